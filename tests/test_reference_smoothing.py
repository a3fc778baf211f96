"""SmoothQuant smoothing against its two references, restated here on the same tensors.

* QDLM (DuQuant's code run with --smooth, `quantize/duquant.py` + `quantize/utils.py`): for each of four pairs
  the scale comes from the activation maximum of ONE linear and that linear's own weight maximum
  (q for q/k/v, attn_out, up for gate/up, ff_out); the activation maximum is clamped at 1e-5 first, the scale at
  1e-5, and then every scale below 1e-2 is raised to 1e-2 before it is folded.
* mit-han-lab/smoothquant (`smooth.py`): two pairs, the weight maximum over every linear of the group, the
  activation maximum used as it is (a dead channel gets the floor 1e-5 as its scale).
"""
import copy

import pytest
import torch

from dllmq.models import get_layout
from dllmq.quant import Recipe, quantize
from dllmq.quant.act_stats import collect_input_absmax
from dllmq.quant.report import relative_l2_error
from dllmq.quant.smoothquant import RULES, smooth_model, smoothing_scales

STAT_ROLES = ("q", "o", "gate", "down")


def _ids(B=4, T=16, seed=0):
    return torch.randint(4, 101, (B, T), generator=torch.Generator().manual_seed(seed))


def _logits(model, ids):
    with torch.no_grad():
        return model(ids).logits


def _make_small_and_dead_channels(model):
    """Channels with tiny and zero activations, so the clamps and the 1e-2 truncation matter."""
    layout = get_layout(model)
    with torch.no_grad():
        for b in layout.blocks:
            b.attn_norm.weight[:6] = 1e-6  # tiny norm output ...
            b.attn_norm.weight[6] = 0.0  # ... and a dead q/k/v input channel
            b.get("q").weight[:, :7] *= 50  # with large weights there: s far below 1e-2
            b.mlp_norm.weight[:5] = 1e-6
            b.get("up").weight[:, :5] *= 50
            b.get("up").weight[:4] *= 1e-4  # tiny rows of up: small down-pair activations
    return model


# ---------------------------------------------------------------- QDLM's rule, restated


def _qdlm_scale(act, w_single, alpha):
    a = act.float().clamp(min=1e-5)
    w = w_single.float().abs().max(dim=0).values.clamp(min=1e-5)
    s = (a ** alpha / w ** (1 - alpha)).clamp(min=1e-5)
    small = s.abs() < 1e-2
    s[small] = torch.sign(s[small]) * 1e-2
    return s


@torch.no_grad()
def _qdlm_smooth_llada(model, stats, alpha):
    """QDLM on a LLaDA model, in LLaDA's own module names: scales first (from the unsmoothed layer), then folded."""
    for i, blk in enumerate(model.model.transformer.blocks):
        s_qkv = _qdlm_scale(stats[(i, "q")], blk.q_proj.weight, alpha)
        s_out = _qdlm_scale(stats[(i, "o")], blk.attn_out.weight, alpha)
        s_fc1 = _qdlm_scale(stats[(i, "gate")], blk.up_proj.weight, alpha)
        s_down = _qdlm_scale(stats[(i, "down")], blk.ff_out.weight, alpha)
        blk.attn_norm.weight.div_(s_qkv)
        for fc in (blk.q_proj, blk.k_proj, blk.v_proj):
            fc.weight.mul_(s_qkv[None, :])
        blk.ff_norm.weight.div_(s_fc1)
        for fc in (blk.up_proj, blk.ff_proj):
            fc.weight.mul_(s_fc1[None, :])
        blk.up_proj.weight.div_(s_down[:, None])
        blk.ff_out.weight.mul_(s_down[None, :])
        blk.v_proj.weight.div_(s_out[:, None])
        blk.attn_out.weight.mul_(s_out[None, :])


def test_qdlm_variant_is_qdlms_rule(tiny_llada):
    model, _ = tiny_llada
    model = _make_small_and_dead_channels(model)
    ids = _ids()
    stats = collect_input_absmax(model, get_layout(model), ids, roles=STAT_ROLES, progress=False)
    ours, ref, principled = copy.deepcopy(model), copy.deepcopy(model), copy.deepcopy(model)
    scales = smooth_model(get_layout(ours), stats, alpha=0.5, variant="qdlm")
    _qdlm_smooth_llada(ref, stats, alpha=0.5)
    for (name, p), (_, r) in zip(ours.named_parameters(), ref.named_parameters()):
        assert torch.allclose(p, r, rtol=1e-6, atol=0), name
    assert min(float(s.min()) for s in scales.values()) == pytest.approx(1e-2)  # the truncation acted
    # the principled variant differs: max|W| over the whole group, no truncation
    groupmax = smooth_model(get_layout(principled), stats, alpha=0.5, variant="groupmax")
    differ = {k: int((scales[k] != groupmax[k]).sum()) for k in scales}
    assert differ[(0, "attn_norm->q,k,v")] > 0 and differ[(0, "mlp_norm->gate,up")] > 0
    assert min(float(s.min()) for s in groupmax.values()) < 1e-2
    for m in (ours, principled):  # both are exact rewrites in full precision
        assert relative_l2_error(_logits(model, ids), _logits(m, ids)) < 1e-4


def test_smoothquant_and_duquant_default_to_qdlms_rule(tiny_llada):
    model, _ = tiny_llada
    assert Recipe.paper("smoothquant", "w8a8").knob("smoothing") == "qdlm"
    assert Recipe.paper("smoothquant", "w8a8", smoothing="official").knob("smoothing") == "official"
    assert Recipe.paper("duquant", "w8a8").knob("smoothing") == "qdlm"
    _, report = quantize(model, Recipe.paper("smoothquant", "w8a8"), _ids())
    assert report.extra["smoothing"]["rule"] == "qdlm"
    with pytest.raises(ValueError, match="smoothing"):
        quantize(model, Recipe.parse("duquant:w8a8:smoothing=magic,block_size=16,rotation_steps=2"), _ids())


# ---------------------------------------------------------------- the official rule and dead channels


def _official_scale(act, weights, alpha):
    w = torch.stack([fc.abs().max(dim=0).values for fc in weights]).max(dim=0).values.clamp(min=1e-5)
    return (act.float() ** alpha / w.float() ** (1 - alpha)).clamp(min=1e-5)


def test_official_variant_matches_smoothquant_including_dead_channels(tiny_llada):
    model, _ = tiny_llada
    model = _make_small_and_dead_channels(model)
    ids = _ids()
    layout = get_layout(model)
    stats = collect_input_absmax(model, layout, ids, roles=STAT_ROLES, progress=False)
    assert float(stats[(0, "q")][6]) == 0.0  # a dead input channel
    before = {r: layout.blocks[0].get(r).weight.detach().clone() for r in ("q", "k", "v", "gate", "up")}
    gamma = layout.blocks[0].attn_norm.weight.detach().clone()
    ref_logits = _logits(model, ids)
    scales = smooth_model(layout, stats, alpha=0.5, variant="official")
    s = scales[(0, "attn_norm->q,k,v")]
    want = _official_scale(stats[(0, "q")], [before[r] for r in ("q", "k", "v")], 0.5)
    assert torch.allclose(s, want, rtol=1e-6, atol=0)
    want_mlp = _official_scale(stats[(0, "gate")], [before[r] for r in ("gate", "up")], 0.5)
    assert torch.allclose(scales[(0, "mlp_norm->gate,up")], want_mlp, rtol=1e-6, atol=0)
    assert float(s[6]) == pytest.approx(1e-5)  # the official floor (dllmq's clamp-first rule would give ~0.003)
    assert float(smoothing_scales(stats[(0, "q")], [before["q"]], 0.5)[6]) > 1e-3
    assert torch.allclose(layout.blocks[0].attn_norm.weight, gamma / s)  # γ_j = 0 stays 0: still exact
    assert relative_l2_error(ref_logits, _logits(model, ids)) < 1e-4


def test_rules_are_what_the_docs_say():
    assert len(RULES["official"].pairs) == 2 and len(RULES["qdlm"].pairs) == 4 == len(RULES["groupmax"].pairs)
    assert RULES["qdlm"].weight_from == {"q": "q", "o": "o", "gate": "up", "down": "down"}
    assert (RULES["official"].clamp_act, RULES["qdlm"].truncate, RULES["groupmax"].truncate) == (False, 1e-2, None)
