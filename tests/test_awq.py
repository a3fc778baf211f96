"""AWQ: scaling is function-preserving, the grid never loses to RTN, clipping, GQA handling, real layers."""

import pytest
import torch

from dllmq.models import get_layout
from dllmq.quant import QuantLinear, Recipe, quantize
from dllmq.quant import awq
from dllmq.quant.quantizer import QuantSpec, fake_quantize
from dllmq.quant.sequential import batched_relative_error, run_sequential
from quant_helpers import awq_vs_rtn_block_errors

SPEC = QuantSpec(bits=3, granularity="group", group_size=32)


@pytest.mark.parametrize("family", ["llada", "dream", "llama"])
def test_scaling_leaves_the_fp_output_unchanged(family, request):
    model, _ = request.getfixturevalue(f"tiny_{family}")
    calib = torch.randint(4, 100, (4, 32))
    with torch.no_grad():
        ref = model(input_ids=calib).logits
    seen = {}

    def process(ctx):
        feats = ctx.collect_inputs(["q", "o", "gate", "down"])
        seen[ctx.index] = awq.scale_block(ctx, SPEC, feats, n_grid=20)
        assert batched_relative_error(ctx.run(), ctx.fp_outputs) < 1e-10  # block output unchanged

    run_sequential(model, get_layout(model), calib, process, propagate="fp")
    with torch.no_grad():
        assert torch.allclose(model(input_ids=calib).logits, ref, atol=1e-4)
    groups = set(seen[0])
    assert {"attn_norm->q+k+v", "mlp_norm->gate+up", "up->down"} <= groups
    assert ("v->o" in groups) == (family == "llada")  # Dream/Llama tiny models use GQA: v->o is skipped
    assert not any(g.startswith("gate") for g in groups)  # never through the SiLU branch


def test_grid_includes_the_rtn_point_so_search_never_loses(tiny_llada):
    model, _ = tiny_llada
    curves = {}

    def process(ctx):
        feats = ctx.collect_inputs(["q", "o", "gate", "down"])
        curves.update({(ctx.index, k): v for k, v in awq.scale_block(ctx, SPEC, feats).items()})

    run_sequential(model, get_layout(model), torch.randint(4, 100, (4, 32)), process, propagate="fp")
    for info in curves.values():
        assert len(info["losses"]) == 20
        assert min(info["losses"]) <= info["losses"][0]  # r = 0 (s = 1) is plain RTN
        assert info["losses"][round(info["ratio"] * 20)] == min(info["losses"])


def test_clip_search_never_loses_to_no_clip():
    torch.manual_seed(0)
    w = torch.randn(16, 64)
    w[2, 5] = 8.0
    x = torch.randn(600, 64)
    max_val = awq.search_clip(w, x, SPEC, n_tokens=512)
    org = w.view(16, 2, 32).abs().amax(-1, keepdim=True)
    assert max_val.shape == (16, 2, 1) and (max_val <= org + 1e-6).all() and (max_val < org).any()
    clipped = torch.clamp(w.view(16, 2, 32), -max_val, max_val).view(16, 64)
    xs = x[0::1][:512].view(512, 2, 32)

    def group_err(wq):  # per-(row, group) partial-output MSE, the objective of the search
        return torch.einsum("tgk,ogk->otg", xs, (wq - w).view(16, 2, 32)).pow(2).mean(1)

    assert torch.all(group_err(fake_quantize(clipped, SPEC)) <= group_err(fake_quantize(w, SPEC)) + 1e-6)


@pytest.mark.parametrize("family", ["llada", "dream", "llama"])
def test_awq_block_error_at_most_rtn_on_tiny_models(family, request):
    model, _ = request.getfixturevalue(f"tiny_{family}")
    for a, r in [(a, r) for _, a, r in awq_vs_rtn_block_errors(model, torch.randint(4, 100, (8, 32)),
                                                                Recipe.parse("awq:w3a16g32"))]:
        assert a <= r


def test_apply_end_to_end(tiny_dream):
    model, _ = tiny_dream
    layout = get_layout(model)
    head = layout.head.weight.clone()
    model, report = quantize(model, "awq:w4a16g32:clip_tokens=64", torch.randint(4, 100, (4, 32)), inplace=True)
    assert all(isinstance(l, QuantLinear) and l.qmeta["method"] == "awq" for b in layout.blocks
               for l in b.linears.values())
    assert torch.equal(layout.head.weight, head) and len(report.layers) == 14
    assert any("GQA" in e for e in report.events) and set(report.extra["awq_scales"]) == {0, 1}
    assert all(0 <= r.error < 0.1 for r in report.layers)


def test_knobs_switch_steps_off(tiny_llada):
    model, _ = tiny_llada
    _, report = quantize(model, "awq:w4a16g32:scale=false,clip=false", torch.randint(4, 100, (2, 16)))
    assert "awq_scales" not in report.extra
    rtn_model, _ = quantize(model, "rtn:w4a16g32")
    awq_model, _ = quantize(model, "awq:w4a16g32:scale=false,clip=false", torch.randint(4, 100, (2, 16)))
    for (n, a), (_, b) in zip(rtn_model.named_parameters(), awq_model.named_parameters()):
        assert torch.equal(a, b), n  # no scale and no clip: AWQ is RTN


@pytest.mark.slow
def test_awq_at_most_rtn_on_smollm2_blocks(smollm2):
    from dllmq.calibration import get_calibration

    model, tok = smollm2
    calib = get_calibration("text", tok, n_samples=4, seq_len=128, seed=0)
    rows = awq_vs_rtn_block_errors(model, calib, Recipe.parse("awq:w3a16g64"), blocks=[0, 4])
    assert len(rows) == 2
    for block, a, r in rows:
        assert a <= r, f"block {block}: awq {a:.3e} > rtn {r:.3e}"
