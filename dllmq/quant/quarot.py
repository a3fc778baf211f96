"""QuaRot: outlier-free 4-bit inference in rotated LLMs (Ashkboos et al., arXiv 2404.00456).

An orthogonal Q applied to the residual stream changes no output, x Wᵀ = (x Q)(W Q)ᵀ, but a random
Hadamard Q spreads every massive channel evenly over all d channels, so per-token activation
quantization no longer loses everything to one outlier. The algorithm box:

  1. fold every RMSNorm γ into the linears that read it (float64), leaving weight-free norms; RMSNorm
     commutes with Q because ‖x Q‖ = ‖x‖
  2. rotate the residual stream by Q = D·H/√d (D random ±1): embedding E Q, every reader W Q
     (q, k, v, gate, up, head), every writer Qᵀ W (o, down)
  3. v / o: a head-dim Hadamard on v's output rows, undone in o's input columns; plus an *online*
     Hadamard across heads on o's input (both together = a full Hadamard on o's input)
  4. an *online* Hadamard of size intermediate before the down projection, folded into W_down
     (sizes that are not powers of two: H_K ⊗ H_2^m, see hadamard.py; sizes without a Hadamard matrix
     need the explicit knob hadamard_fallback="block" | "orthogonal", otherwise a clear error)
  5. K (after RoPE) and Q get an online head-dim Hadamard (Q Kᵀ unchanged); K and V are quantized per
     (token, head), queries stay 16-bit
  6. weights: GPTQ (default, as the code; symmetric per channel, MSE clip search, damp 0.01) on the
     rotated model, or RTN; activations: per token, symmetric, clip ratio (recipe a_clip)

Knobs: weights "gptq"|"rtn"; rotation "hadamard"|"random" (QR orthogonal Q); hadamard_fallback
"none"|"block"|"orthogonal"; kv_sym / kv_clip (K/V quantizer: the dLLM paper's code runs QuaRot's CLI
defaults, symmetric and clip 1.0; the QuaRot paper uses asymmetric, clip 0.95); seed.
Llama-family baselines have no attention hook: K/V are quantized at the k/v projection outputs (before
RoPE, without the head-dim Hadamard), reported as an event.
"""
from __future__ import annotations

import time
from typing import Optional

import torch

from .fold import fuse_norms, head_blocks, rotate_embedding, rotate_input, rotate_output
from .hadamard import HadamardRotation, check_fallback, hadamard_matrix, random_orthogonal_matrix, random_signs
from .qlinear import QuantLinear
from .gptq import quantize_block as gptq_block
from .report import QuantReport, relative_weight_error
from .sequential import run_sequential
from .wa import install_attention_quantizers, rtn_linear

PROPAGATE = "quantized"  # GPTQ weights are fitted on the outputs of already-quantized blocks
# weights: GPTQ (the paper) or RTN on the rotated model; damp: GPTQ's damping; rotation: randomized Hadamard
# (QuaRot) or a random orthogonal matrix; hadamard_fallback for sizes without a Hadamard matrix; K/V cache
# quantizer symmetric with no clipping; rotation_seed draws the random signs / rotations.
KNOBS = dict(weights="gptq", damp=0.01, rotation="hadamard", hadamard_fallback="none", kv_sym=True, kv_clip=1.0,
             rotation_seed=0)
ROTATIONS = ("hadamard", "random")
READERS = ("q", "k", "v", "gate", "up")
WRITERS = ("o", "down")


def _fallback(value) -> Optional[str]:
    value = None if value in (None, "none") else value
    check_fallback(value)
    return value


def residual_rotation(n: int, rotation: str = "hadamard", fallback: Optional[str] = None,
                      seed: int = 0) -> torch.Tensor:
    """Q (n×n, float64, orthogonal): D·H/√n with random signs D, or a random orthogonal matrix."""
    if rotation not in ROTATIONS:
        raise ValueError(f"rotation={rotation!r} is unknown; allowed: {ROTATIONS}")
    if rotation == "random":
        return random_orthogonal_matrix(n, seed)
    H = HadamardRotation(n, fallback=fallback, seed=seed).matrix()
    return random_signs(n, seed)[:, None] * H  # diag(±1) · H


@torch.no_grad()
def rotate_model(layout, rotation: str = "hadamard", fallback: Optional[str] = None, seed: int = 0) -> dict:
    """Steps 1-4 in place (exact in full precision). Returns the online transforms {(block, role): module}
    that must run before o and down (install them with `install_online_transforms`)."""
    hd, n_heads, n_kv = layout.head_dim, layout.n_heads, layout.n_kv_heads
    # 1. RMSNorm γ into the readers (the untied head included).
    fuse_norms(layout)
    # 2. The residual stream: x -> x Q.
    Q = residual_rotation(layout.hidden_size, rotation, fallback, seed)
    rotate_embedding(layout.embed, Q)
    rotate_input(layout.head, Q)
    H_hd = hadamard_matrix(hd) if fallback is None else HadamardRotation(hd, fallback=fallback).matrix()
    online = {}
    for b in layout.blocks:
        lin = b.linears
        for role in READERS:
            rotate_input(lin[role], Q)
        for role in WRITERS:
            rotate_output(lin[role], Q)
        # 3. v -> o: head-dim Hadamard on v's outputs, undone in o's inputs; online rotation across heads.
        rotate_output(lin["v"], head_blocks(H_hd, n_kv))
        rotate_input(lin["o"], head_blocks(H_hd, n_heads))
        t_o = HadamardRotation(n_heads, inner=hd, fallback=fallback, seed=seed + 1)
        rotate_input(lin["o"], t_o.matrix())
        # 4. Online Hadamard before down, folded into W_down row by row (W <- W H, no dense H needed).
        t_down = HadamardRotation(layout.intermediate_size, fallback=fallback, seed=seed + 2)
        lin["down"].weight.data = t_down(lin["down"].weight.data.double()).to(lin["down"].weight.dtype)
        online[(b.index, "o")], online[(b.index, "down")] = t_o, t_down
    return online


def install_online_transforms(layout, online: dict) -> None:
    """Wrap o and down in full-precision QuantLinears that apply their online transform first."""
    for (i, role), t in online.items():
        b = layout.blocks[i]
        t = t.to(b.get(role).weight.device)
        b.set(role, QuantLinear.from_linear(b.get(role), input_transform=t))


def _install_act_quantizers(layout, recipe) -> None:
    """Every block linear becomes a QuantLinear with a per-token activation quantizer (weights still FP)."""
    for b in layout.blocks:
        for role, lin in b.linears.items():
            if not isinstance(lin, QuantLinear):
                lin = QuantLinear.from_linear(lin)
                b.set(role, lin)
            lin.act_quantizer = recipe.act_quantizer()


def _rtn_weights(layout, recipe, report: QuantReport) -> None:
    spec = recipe.weight_spec()
    for b in layout.blocks:
        for role, lin in b.linears.items():
            t0 = time.perf_counter()
            w = lin.weight.data.clone()
            q = rtn_linear(lin, spec, "quarot")
            b.set(role, q)
            report.add_layer(b.index, role, b.name_of(role, layout.family.blocks), relative_weight_error(w, q.weight),
                             time.perf_counter() - t0, recipe.w_bits, basis="weight", notes="rtn")


def _gptq_weights(model, layout, recipe, calib, report: QuantReport, device, batch_size: int) -> None:
    """GPTQ on the rotated model: inputs observed after the online transforms, before act quantization."""
    spec = recipe.weight_spec(include_zero=True)
    run_sequential(model, layout, calib, lambda ctx: gptq_block(ctx, recipe, spec), propagate=PROPAGATE,
                   report=report, device=device, batch_size=batch_size, desc="quarot gptq")


@torch.no_grad()
def apply(model, layout, recipe, calib, device=None, batch_size: int = 8) -> QuantReport:
    """QuaRot in place: rotate (steps 1-4), weights by GPTQ or RTN, per-token activations, K/V."""
    t_start = time.perf_counter()
    report = QuantReport(recipe=str(recipe), method="quarot")
    fallback = _fallback(recipe.knob("hadamard_fallback"))
    rotation, weights = recipe.knob("rotation"), recipe.knob("weights")
    if weights not in ("gptq", "rtn"):
        raise ValueError(f"knob weights={weights!r} is unknown; allowed: 'gptq', 'rtn'")
    seed = int(recipe.knob("rotation_seed"))
    # 1-4. Fold norms, rotate, install the online Hadamards (the model still computes the same function).
    online = rotate_model(layout, rotation, fallback, seed)
    install_online_transforms(layout, online)
    report.extra["online"] = {f"{i}.{r}": t.extra_repr() for (i, r), t in list(online.items())[:2]}
    # 6. Weights (GPTQ sees the rotated inputs, not yet activation-quantized), then activations.
    if recipe.w_bits < 16:
        if weights == "gptq":
            _gptq_weights(model, layout, recipe, calib, report, device, batch_size)
        else:
            _rtn_weights(layout, recipe, report)
    _install_act_quantizers(layout, recipe)
    # 5. K (after RoPE and a head-dim Hadamard on Q and K) and V; queries at q_bits (16 in the paper).
    how = install_attention_quantizers(
        layout, recipe.q_bits, recipe.kv_bits, sym=recipe.a_sym, clip_ratio=recipe.a_clip,
        kv_sym=bool(recipe.knob("kv_sym")), kv_clip_ratio=float(recipe.knob("kv_clip")),
        rotate_qk=True)
    report.extra["attention_inputs"] = how
    if how == "projection-outputs":
        report.add_event("K/V: Llama family has no attention hook; k/v projection outputs are quantized "
                         "instead (before RoPE, no head-dim Hadamard)")
    report.total_time_s = time.perf_counter() - t_start
    return report
