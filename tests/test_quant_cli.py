"""`dllmq quantize`: quantize, print the report, save; clear errors for bad recipes."""
import json

import torch

from dllmq.cli import main as dllmq_main
from dllmq.quant.cli import main
from dllmq.quant.save import load_quantized


def test_quantize_command_writes_a_loadable_model(tmp_path, capsys):
    out = tmp_path / "q"
    rc = main(["--model", "tiny-random", "--recipe", "gptq:w4a16g32", "--calib", "text", "--n-samples", "4",
               "--seq-len", "32", "--out", str(out), "--packed"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "QuantReport gptq:w4a16g32:calib=text,n=4,len=32" in printed and "saved to" in printed
    meta = json.loads((out / "dllmq_quant.json").read_text())
    assert meta["recipe"] == "gptq:w4a16g32:calib=text,n=4,len=32" and len(meta["report"]["layers"]) == 14
    model, tok, recipe = load_quantized(out)
    with torch.no_grad():
        assert torch.isfinite(model(input_ids=torch.randint(4, 100, (1, 8))).logits).all()


def test_paper_preset_and_errors(tmp_path, capsys):
    assert dllmq_main(["quantize", "--model", "tiny-random", "--recipe", "gptq:w4a8", "--out", str(tmp_path)]) == 2
    assert "a_bits" in capsys.readouterr().err
    assert main(["--paper", "gptq:w4a16g128:repo", "--out", str(tmp_path)]) == 2
    assert "variant" in capsys.readouterr().err
    # the paper's g128 does not fit the tiny model's 64-wide layers: a clear error, nothing written
    assert main(["--model", "tiny-random", "--paper", "rtn:w4a16g128", "--out", str(tmp_path / "r")]) == 2
    assert "group_size=128" in capsys.readouterr().err and not (tmp_path / "r").exists()
