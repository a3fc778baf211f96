"""RTN and the quantize() entry point: weights equal the quantizer's output, FP parts untouched, reports."""
import pytest
import torch

import dllmq
from dllmq.models import get_layout
from dllmq.quant import QuantLinear, Recipe, quantize
from dllmq.quant.quantizer import fake_quantize


def test_public_exports():
    assert dllmq.Recipe is Recipe and dllmq.quantize is quantize
    from dllmq.quant import QuantLinear as Q, fake_quantize as fq  # noqa: F401
    assert callable(dllmq.get_calibration)


@pytest.mark.parametrize("family", ["llada", "dream", "llama"])
def test_rtn_weights_are_the_quantizer_output(family, request):
    model, _ = request.getfixturevalue(f"tiny_{family}")
    layout = get_layout(model)
    originals = {(b.index, r): l.weight.detach().clone() for b in layout.blocks for r, l in b.linears.items()}
    norm, head = layout.final_norm.weight.clone(), layout.head.weight.clone()
    model, report = quantize(model, "rtn:w4a16g32", inplace=True)
    for b in layout.blocks:
        for role, lin in b.linears.items():
            assert isinstance(lin, QuantLinear)
            expected = fake_quantize(originals[(b.index, role)], 4, granularity="group", group_size=32)
            assert torch.equal(lin.weight, expected)
    assert torch.equal(layout.final_norm.weight, norm) and torch.equal(layout.head.weight, head)
    assert {r.basis for r in report.layers} == {"weight"} and model.dllmq_recipe == "rtn:w4a16g32"


def test_error_falls_with_bits_on_calibration_inputs(tiny_llada):
    model, _ = tiny_llada
    calib = torch.randint(4, 100, (4, 32))
    errors = {}
    for bits in (3, 4, 8):
        _, report = quantize(model, f"rtn:w{bits}a16g32", calib)
        assert {r.basis for r in report.layers} == {"output"}
        errors[bits] = report.mean_error()
    assert errors[8] < errors[4] < errors[3]


@pytest.mark.parametrize("family, where", [("llada", "attention-hook"), ("llama", "projection-outputs")])
def test_weight_activation_rtn(family, where, request):
    model, _ = request.getfixturevalue(f"tiny_{family}")
    model, report = quantize(model, "rtn:w8a8:kv=8,q=8", inplace=True)
    lin = get_layout(model).blocks[0].get("down")
    assert lin.a_bits == 8 and lin.w_bits == 8
    assert any(where in e for e in report.events)
    with torch.no_grad():
        assert torch.isfinite(model(input_ids=torch.randint(4, 100, (1, 8))).logits).all()


def test_report_table_and_frame(tiny_llada):
    model, _ = tiny_llada
    _, report = quantize(model, Recipe.parse("rtn:w3a16"), torch.randint(4, 100, (2, 16)))
    frame = report.to_frame()
    assert list(frame.columns)[:4] == ["block", "role", "name", "error"] and len(frame) == 14
    assert report.error(1, "down") == frame.query("block == 1 and role == 'down'").error.item()
    text = str(report)
    assert "rtn:w3a16" in text and "down" in text and "block output rel. error" in text
    assert report.block_frame().shape[0] == 2
    with pytest.raises(KeyError):
        report.error(7, "q")
