"""SmoothQuant: accurate and efficient post-training quantization for LLMs (Xiao et al., arXiv 2211.10438).

Activations have a few channels with huge values; weights do not. A per-input-channel scale s moves
part of that range from X into W without changing the product:

    Y = X Wᵀ = (X diag(s)⁻¹) (W diag(s))ᵀ,      s_j = max|X_j|^α / max|W_j|^(1−α)

    max|X_j|  running max over all calibration tokens of input channel j (full-precision model)
    max|W_j|  max over the output rows (and over all linears reading X) of |W[:, j]|
    α         migration strength: 0 keeps activations as they are, 1 moves everything into the weights
              (0.5 in the dLLM paper, 0.85 for Llama-2 in the SmoothQuant README)

The division by s is folded into what produces X: the preceding RMSNorm's γ, or the rows of the
preceding linear. Three smoothing rules (knob `smoothing`; `RULES`; DuQuant takes the same knob):
    "official"  attn_norm -> q, k, v and mlp_norm -> gate, up, max|W_j| over every linear of the group,
                max|X_j| used as measured (mit-han-lab/smoothquant `smooth_ln_fcs`): a dead input channel
                (max|X_j| = 0) gets s_j = 1e-5, i.e. γ_j · 1e5 on the norm and its weight column · 1e-5
    "qdlm"      what the dLLM paper's code runs (DuQuant's code with --smooth, FelixMessi/QDLM): four pairs,
                + v -> o and up -> down; max|W_j| of ONE linear per pair (q for q/k/v, up for gate/up, o, down),
                max|X_j| clamped at 1e-5 first, then every s_j below 1e-2 raised to 1e-2 (`truncate_number`)
    "groupmax"  the four pairs with the SmoothQuant definition of max|W_j| (over the whole group) and no
                truncation: dllmq's principled version of "qdlm" (what "qdlm" computed before)
Under grouped-query attention v -> o uses one scale per K/V channel, shared by the query heads of its group
(the reference code divides o's input online instead); QDLM's extra q/k smoothing vector starts at 1 and is
never trained (epochs 0): the identity, so it is not modelled.

Then (the paper's code, reference/paper.md §2.3): weights RTN per output channel, asymmetric;
activations per token, dynamic, asymmetric; Q, K, V of the attention matmuls at the activation bits.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Optional

import torch

from .act_stats import collect_input_absmax
from .fold import scale_input, scale_norm, scale_output
from .report import QuantReport, relative_weight_error
from .wa import install_attention_quantizers, rtn_linear

PROPAGATE = None  # one full-model statistics pass, no layer-by-layer engine
KNOBS = {"alpha": 0.5, "smoothing": "qdlm"}  # migration strength of the paper; smoothing rule (see RULES)
CLAMP = 1e-5  # lower bound of max|W_j| and of s (both references), and of max|X_j| where a rule clamps it
TRUNCATE = 1e-2  # QDLM/DuQuant `truncate_number`: |s_j| below this is raised to it
_TWO_PAIRS = (("attn_norm", ("q", "k", "v")), ("mlp_norm", ("gate", "up")))
_FOUR_PAIRS = (("attn_norm", ("q", "k", "v")), ("v", ("o",)), ("mlp_norm", ("gate", "up")), ("up", ("down",)))


@dataclass(frozen=True)
class SmoothingRule:
    """How one variant computes and places s (see the module docstring)."""

    pairs: tuple  # ((producer, consumers), ...)
    weight_from: Optional[dict]  # first consumer -> the one linear whose max|W_j| counts; None: all consumers
    clamp_act: bool  # clamp max|X_j| at CLAMP before the power
    truncate: Optional[float]  # raise s_j below this to it


RULES = {
    "official": SmoothingRule(_TWO_PAIRS, None, clamp_act=False, truncate=None),
    "qdlm": SmoothingRule(_FOUR_PAIRS, {"q": "q", "o": "o", "gate": "up", "down": "down"}, clamp_act=True,
                          truncate=TRUNCATE),
    "groupmax": SmoothingRule(_FOUR_PAIRS, None, clamp_act=True, truncate=None),
}
PAIRS = {name: rule.pairs for name, rule in RULES.items()}
STAT_ROLES = ("q", "o", "gate", "down")  # one input site per pair (q/k/v and gate/up share their input)


def check_variant(variant: str) -> SmoothingRule:
    if variant not in RULES:
        raise ValueError(f"smoothing={variant!r} is unknown; allowed: {sorted(RULES)}")
    return RULES[variant]


def smoothing_scales(act_absmax: torch.Tensor, weights: list, alpha: float, clamp_act: bool = True,
                     truncate: Optional[float] = None) -> torch.Tensor:
    """s_j = clamp(max|X_j|^α / max|W_j|^(1−α), 1e-5), max|W_j| over all `weights` ([out, in] each), clamped
    at 1e-5; max|X_j| clamped at 1e-5 first when `clamp_act`; then s_j < `truncate` raised to `truncate`."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha={alpha} is out of range; allowed: [0, 1]")
    w_max = torch.stack([w.detach().abs().amax(dim=0).float().cpu() for w in weights]).amax(dim=0)
    a = act_absmax.float().cpu()
    a = a.clamp(min=CLAMP) if clamp_act else a
    s = (a.pow(alpha) / w_max.clamp(min=CLAMP).pow(1 - alpha)).clamp(min=CLAMP)
    return s if truncate is None else s.clamp(min=truncate)  # s > 0 here, so sign(s)·truncate = truncate


def _group_kv(x: torch.Tensor, n_kv: int, n_rep: int, head_dim: int) -> torch.Tensor:
    """(n_heads·hd,) per-query-head channel stats -> (n_kv·hd,) max over the heads sharing a K/V head."""
    return x.reshape(n_kv, n_rep, head_dim).amax(dim=1).reshape(-1)


def smooth_pair(block, prev: str, nexts: tuple, act_absmax: torch.Tensor, alpha: float, layout,
                variant: str = "groupmax") -> torch.Tensor:
    """Compute s for one (producer, consumers) pair by `variant`'s rule and fold it; returns s (per input
    channel of `nexts`)."""
    rule = check_variant(variant)
    consumers = [block.get(r) for r in nexts]
    stat = consumers if rule.weight_from is None else [block.get(rule.weight_from[nexts[0]])]
    opts = dict(clamp_act=rule.clamp_act, truncate=rule.truncate)
    if prev in ("attn_norm", "mlp_norm"):
        s = smoothing_scales(act_absmax, [c.weight for c in stat], alpha, **opts)
        scale_norm(getattr(block, prev), s)
        for c in consumers:
            scale_input(c, s)
        return s
    producer = block.get(prev)
    n_in, n_out = consumers[0].weight.shape[1], producer.weight.shape[0]
    if n_in == n_out:
        s = smoothing_scales(act_absmax, [c.weight for c in stat], alpha, **opts)
        scale_output(producer, s)
        scale_input(consumers[0], s)
        return s
    if (prev, nexts) != ("v", ("o",)):
        raise ValueError(f"cannot smooth {prev} -> {nexts}: {n_out} outputs feed {n_in} inputs")
    # Grouped-query attention: o's input repeats each K/V head n_rep times.
    hd, n_kv = layout.head_dim, layout.n_kv_heads
    n_rep = layout.n_heads // n_kv
    w_o = consumers[0].weight.detach().abs().float().cpu()
    w_max = _group_kv(w_o.amax(dim=0), n_kv, n_rep, hd)
    a = _group_kv(act_absmax.float().cpu(), n_kv, n_rep, hd)
    s_kv = smoothing_scales(a, [w_max[None, :]], alpha, **opts)
    scale_output(producer, s_kv)
    s_full = s_kv.view(n_kv, 1, hd).expand(n_kv, n_rep, hd).reshape(-1)  # head h reads K/V head h // n_rep
    scale_input(consumers[0], s_full)
    return s_full


def smooth_model(layout, act_stats: dict, alpha: float = 0.5, variant: str = "qdlm") -> dict:
    """Fold SmoothQuant scales into every block (exact in full precision); {(block, pair): s}."""
    rule = check_variant(variant)
    scales = {}
    for b in layout.blocks:
        for prev, nexts in rule.pairs:
            scales[(b.index, f"{prev}->{','.join(nexts)}")] = smooth_pair(
                b, prev, nexts, act_stats[(b.index, nexts[0])], alpha, layout, variant)
    return scales


def quantize_linears(layout, recipe, report: QuantReport, method: str) -> None:
    """Swap every block linear for a QuantLinear: RTN weights (recipe.weight_spec), per-token activations."""
    spec = recipe.weight_spec()
    for b in layout.blocks:
        for role, lin in b.linears.items():
            t0 = time.perf_counter()
            q = rtn_linear(lin, spec, method, act_quantizer=recipe.act_quantizer())
            b.set(role, q)
            report.add_layer(b.index, role, b.name_of(role, layout.family.blocks),
                             relative_weight_error(lin.weight, q.weight), time.perf_counter() - t0,
                             recipe.w_bits, basis="weight")


@torch.no_grad()
def apply(model, layout, recipe, calib) -> QuantReport:
    """SmoothQuant in place: statistics, smoothing, RTN weights, per-token activations, attention inputs."""
    t_start = time.perf_counter()
    report = QuantReport(recipe=str(recipe), method="smoothquant")
    alpha, variant = float(recipe.knob("alpha")), recipe.knob("smoothing")
    # 1. max|X_j| of every input site over the calibration set, full-precision model.
    stats = collect_input_absmax(model, layout, calib, roles=STAT_ROLES)
    # 2. s_j = max|X_j|^α / max|W_j|^(1−α), folded into the producer (norm γ or linear rows).
    scales = smooth_model(layout, stats, alpha, variant)
    report.extra["smoothing"] = {"alpha": alpha, "rule": variant, "pairs": sorted({k[1] for k in scales})}
    # 3. Weights RTN per output channel; activations per token, dynamic.
    quantize_linears(layout, recipe, report, "smoothquant")
    # 4. Attention matmul inputs (Q, K, V) at their bit-widths (16 = off).
    how = install_attention_quantizers(layout, recipe.q_bits, recipe.kv_bits, sym=recipe.a_sym,
                                       clip_ratio=recipe.a_clip)
    report.extra["attention_inputs"] = how
    if how == "projection-outputs":
        report.add_event("attention inputs: Llama family has no attention hook; q/k/v projection outputs are "
                         "quantized instead (K before RoPE)")
    report.total_time_s = time.perf_counter() - t_start
    return report


__all__ = ["apply", "smooth_model", "smoothing_scales", "smooth_pair", "quantize_linears", "RULES", "SmoothingRule"]
