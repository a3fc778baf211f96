"""On SmolLM2 (real massive activations) the W4A4 methods order as the paper's Finding says, and W8A8 is
close to full precision. Output error = relative logits error vs FP on held-out text."""

import pytest
import torch

from dllmq.calibration import get_calibration, load_text
from dllmq.quant import Recipe, quantize
from dllmq.quant.report import relative_l2_error


@pytest.fixture(scope="module")
def setup(smollm2):
    model, tok = smollm2
    calib = get_calibration("text", tok, n_samples=4, seq_len=128, seed=0)
    ids = tok(load_text("test"), return_tensors="pt", add_special_tokens=False).input_ids[0][:256].view(2, 128)
    with torch.no_grad():
        ref = model(ids).logits.float()
    return model, calib, ids, ref


def output_error(setup, method: str, setting: str, **knobs) -> float:
    model, calib, ids, ref = setup
    if method == "duquant":
        knobs = {"rotation_steps": 32, **knobs}
    recipe = Recipe.paper(method, setting, model=model, **knobs)
    qmodel, _ = quantize(model, recipe, calib)
    with torch.no_grad():
        return relative_l2_error(ref, qmodel(ids).logits.float())


@pytest.mark.slow
def test_w4a4_orders_rtn_smoothquant_rotations(setup):
    err = {"rtn": output_error(setup, "rtn", "w4a4"),
           "smoothquant": output_error(setup, "smoothquant", "w4a4"),
           "quarot": output_error(setup, "quarot", "w4a4"),  # the paper preset: GPTQ weights
           "duquant": output_error(setup, "duquant", "w4a4")}
    print(err)
    assert err["rtn"] > err["smoothquant"] > max(err["quarot"], err["duquant"]), err


@pytest.mark.slow
def test_w8a8_stays_close_to_fp(setup):
    for method in ("rtn", "smoothquant"):
        err = output_error(setup, method, "w8a8")
        assert err < 0.1, f"{method} w8a8: relative logits error {err:.3f}"
