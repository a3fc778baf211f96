"""SmoothQuant: the defining equation, exact smoothing on every family, the quantized model's plumbing."""

import pytest
import torch

from dllmq.models import get_layout
from dllmq.quant import Recipe, quantize
from dllmq.quant.act_stats import collect_input_absmax
from dllmq.quant.report import relative_l2_error
from dllmq.quant.qlinear import QuantLinear
from dllmq.quant.smoothquant import PAIRS, smooth_model, smoothing_scales
from dllmq.quant.wa import AttentionInputQuantizer

STAT_ROLES = ("q", "o", "gate", "down")


def _ids(B=4, T=16, seed=0):
    return torch.randint(4, 101, (B, T), generator=torch.Generator().manual_seed(seed))


def _logits(model, ids):
    with torch.no_grad():
        return model(ids).logits


def test_smoothing_scales_follow_the_formula():
    torch.manual_seed(0)
    a = torch.rand(8) * 10
    W1, W2 = torch.randn(4, 8), torch.randn(6, 8)
    s = smoothing_scales(a, [W1, W2], alpha=0.7)
    w = torch.maximum(W1.abs().amax(0), W2.abs().amax(0))
    assert torch.allclose(s, a.pow(0.7) / w.pow(0.3))
    with pytest.raises(ValueError, match="alpha"):
        smoothing_scales(a, [W1], alpha=1.5)


def test_act_stats_are_the_running_max(tiny_llada):
    model, _ = tiny_llada
    layout = get_layout(model)
    ids = _ids()
    stats = collect_input_absmax(model, layout, ids, roles=("q",), batch_size=2, progress=False)
    seen = []
    h = layout.blocks[1].get("q").register_forward_pre_hook(lambda m, a: seen.append(a[0].reshape(-1, 64)))
    _logits(model, ids)
    h.remove()
    assert torch.allclose(stats[(1, "q")], seen[0].abs().amax(0))


@pytest.mark.parametrize("variant", sorted(PAIRS))
def test_smoothing_is_exact_on_every_family(tiny_llada, tiny_dream, tiny_llama, variant):
    for model, _ in (tiny_llada, tiny_dream, tiny_llama):  # Dream and the Llama fixture use GQA (v -> o shared)
        layout = get_layout(model)
        ids = _ids()
        ref = _logits(model, ids)
        stats = collect_input_absmax(model, layout, ids, roles=STAT_ROLES, progress=False)
        scales = smooth_model(layout, stats, alpha=0.5, variant=variant)
        assert len(scales) == len(layout.blocks) * len(PAIRS[variant])
        assert relative_l2_error(ref, _logits(model, ids)) < 1e-4


def test_alpha_half_balances_activation_and_weight_ranges(tiny_llada):
    """With α = 0.5 the smoothed max|X_j| equals the smoothed max|W_j| on every channel."""
    model, _ = tiny_llada
    layout = get_layout(model)
    ids = _ids()
    stats = collect_input_absmax(model, layout, ids, roles=STAT_ROLES, progress=False)
    smooth_model(layout, stats, alpha=0.5, variant="official")
    after = collect_input_absmax(model, layout, ids, roles=("q",), progress=False)
    lin = layout.blocks[0].linears
    w_max = torch.stack([lin[r].weight.abs().amax(0) for r in ("q", "k", "v")]).amax(0)
    assert torch.allclose(after[(0, "q")], w_max, rtol=1e-4)


def test_recipe_knobs():
    r = Recipe.parse("smoothquant:w8a8:smoothing=official,alpha=0.85")
    assert r.knob("smoothing") == "official" and r.knob("alpha") == 0.85
    p = Recipe.paper("smoothquant", "w4a4")
    assert (p.knob("alpha"), p.w_sym, p.a_sym, p.q_bits, p.kv_bits) == (0.5, False, False, 4, 4)


def test_unknown_variant_is_an_error(tiny_llada):
    model, _ = tiny_llada
    with pytest.raises(ValueError, match="smoothing"):
        quantize(model, Recipe.parse("smoothquant:w8a8:smoothing=both"), _ids())


def test_apply_installs_quantizers_and_w8a8_stays_close(tiny_llada, tiny_llama):
    for (model, _), native in ((tiny_llada, True), (tiny_llama, False)):
        ids = _ids(seed=1)
        ref = _logits(model, ids)
        qmodel, report = quantize(model, Recipe.paper("smoothquant", "w8a8"), _ids())
        layout = get_layout(qmodel)
        lin = layout.blocks[0].linears
        assert all(isinstance(m, QuantLinear) for m in lin.values())
        assert lin["down"].act_quantizer.bits == 8 and not lin["down"].act_quantizer.spec.sym
        assert lin["q"].w_spec.granularity == "channel" and not lin["q"].w_spec.sym
        if native:
            assert isinstance(layout.blocks[0].attention.attn_input_quantizer, AttentionInputQuantizer)
        else:  # Llama fallback: q/k/v projection outputs, reported
            assert lin["k"].output_quantizer.bits == 8 and report.events
        assert len(report.layers) == 7 * len(layout.blocks)
        assert relative_l2_error(ref, _logits(qmodel, ids)) < 0.05
        w4 = quantize(model, Recipe.paper("smoothquant", "w4a4"), _ids())[0]
        assert relative_l2_error(ref, _logits(w4, ids)) > relative_l2_error(ref, _logits(qmodel, ids))


def test_save_and_load_round_trip(tiny_dream, tmp_path):
    from dllmq.quant import load_quantized, save_quantized
    model, tok = tiny_dream
    qmodel, _ = quantize(model, Recipe.paper("smoothquant", "w4a4"), _ids())
    save_quantized(qmodel, tmp_path, tok)
    loaded, _, _ = load_quantized(tmp_path)
    attn = get_layout(loaded).blocks[0].attention.attn_input_quantizer
    assert isinstance(attn, AttentionInputQuantizer) and attn.k_quant.bits == 4
    assert torch.equal(_logits(qmodel, _ids(seed=3)), _logits(loaded, _ids(seed=3)))
