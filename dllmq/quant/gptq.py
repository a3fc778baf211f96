"""GPTQ: Accurate Post-Training Quantization for Generative Pre-trained Transformers
(Frantar, Ashkboos, Hoefler, Alistarh; arXiv 2210.17323), as implemented in IST-DASLab/gptq.

Symbols: W [out, in] the weight of one linear, X the calibration inputs of that linear (tokens x in),
H = 2/N sum x x^T the proxy Hessian of the layer loss ||X W^T - X W_hat^T||^2, Hinv the upper Cholesky
factor of (H + lambda I)^-1. Columns are quantized one at a time; each column's rounding error is spread
over the columns not yet quantized, weighted by Hinv (optimal brain surgeon update), so later columns
compensate for earlier rounding.

Per block (layer-wise, quantized outputs propagate to the next block) and per role group
(q,k,v) -> (o) -> (gate,up) -> (down) when true_sequential:
    1. H from the linear's inputs: running mean over sequences, fp32
    2. dead inputs (H_ii = 0): H_ii = 1 and W[:, i] = 0
    3. static_groups: quantizer parameters of every group from the original W
    4. act_order: permute columns by diag(H) descending
    5. dampen: H += lambda I, lambda = damp * mean(diag H) (raised by damp_step and reported if
       Cholesky fails); Hinv = chol((H + lambda I)^-1) upper
    6. for each lazy block of block_size columns, for each column i:
         (new group: parameters from W[:, i:i+g])  q = Q(w_i)  err = (w_i - q) / Hinv_ii
         W[:, i:] -= err Hinv[i, i:]   inside the block
    7. after the block: W[:, rest] -= Err_block Hinv[block, rest]
    8. undo the permutation, write Q back as the layer's (fake-quantized) weight
Knobs (recipe): damp 0.01, block_size 128, act_order False, static_groups False, true_sequential True.
The quantizer is recipe.weight_spec() with the range widened to contain 0 for asymmetric grids (as IST gptq).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Optional

import torch

from ..models.layout import ROLE_GROUPS, ROLES
from .qlinear import QuantLinear
from .quantizer import QParams, QuantSpec, find_qparams
from .report import QuantReport, relative_output_error
from .sequential import BlockContext, run_sequential

PROPAGATE = "quantized"
# The paper's GPTQ (IST-DASLab defaults): 1% damping, lazy batches of 128 columns, natural column order,
# groups fixed as they are reached, q/k/v then o then gate/up then down (true sequential); damp_step is the
# increase tried when the Cholesky factorisation fails.
KNOBS = dict(damp=0.01, block_size=128, act_order=False, static_groups=False, true_sequential=True, damp_step=0.01)
MAX_DAMP = 100.0  # give up (clear error) beyond this multiple of mean(diag H)


@dataclass
class GPTQResult:
    weight: torch.Tensor  # fake-quantized W [out, in], float32
    scale: torch.Tensor  # (out, n_groups)
    zero: torch.Tensor  # (out, n_groups)
    g_idx: Optional[torch.Tensor]  # (in,) column -> group when not arange(in) // group_size
    damp: float  # the damping finally used
    damp_retries: int  # how many Cholesky failures raised it
    loss: float  # sum (w - q)^2 / Hinv_ii^2 / 2
    dead: int  # dead input columns


def damped_inverse_cholesky(H: torch.Tensor, damp: float, damp_step: float = 0.01) -> tuple:
    """Upper Cholesky factor of (H + lambda I)^-1, lambda = damp * mean(diag H); on failure damp += damp_step.
    Returns (Hinv, damp_used, retries)."""
    if not torch.isfinite(H).all():
        raise ValueError("the Hessian has NaN/inf entries: check the calibration activations of this layer")
    mean_diag = torch.diag(H).mean()
    if mean_diag <= 0:
        raise ValueError(f"mean(diag H) = {float(mean_diag):.3g} <= 0: H is not an input second moment")
    retries = 0
    while True:
        Hd = H.clone()
        Hd.diagonal().add_(damp * mean_diag)
        L, info = torch.linalg.cholesky_ex(Hd)
        if info == 0:
            eye = torch.eye(H.shape[0], device=H.device, dtype=H.dtype)
            # (H + lambda I)^-1 from its Cholesky factor (cholesky_solve: same as cholesky_inverse, faster on CPU)
            Hinv, info = torch.linalg.cholesky_ex(torch.cholesky_solve(eye, L), upper=True)
            if info == 0 and torch.isfinite(Hinv).all():
                return Hinv, damp, retries
        retries += 1
        damp = round(damp + damp_step, 10)
        if damp > MAX_DAMP:
            raise RuntimeError(f"GPTQ: Cholesky failed even with damp={damp}; the Hessian is badly conditioned")


def _params(cols: torch.Tensor, spec: QuantSpec) -> QParams:
    """Quantizer parameters per row of a column slice W[:, a:b] (one group or the whole row)."""
    return find_qparams(cols, spec)


@torch.no_grad()
def gptq_quantize(W: torch.Tensor, H: torch.Tensor, spec: QuantSpec, *, block_size: int = 128, damp: float = 0.01,
                  act_order: bool = False, static_groups: bool = False, damp_step: float = 0.01,
                  stop_after: Optional[int] = None) -> GPTQResult:
    """Quantize W [out, in] given the input Hessian H [in, in] (see the module docstring for the steps).

    stop_after=k (teaching): stop after k columns (in processing order); the result holds the k quantized
    columns and the *updated, not yet quantized* remaining ones."""
    if spec.granularity not in ("channel", "group"):
        raise ValueError(f"GPTQ quantizes weights per channel or per group, got granularity={spec.granularity!r}")
    W = W.detach().float().clone()
    H = H.detach().float().to(W.device).clone()
    n_out, n_in = W.shape
    g = spec.group_size if spec.granularity == "group" else None
    if g is not None and n_in % g:
        raise ValueError(f"group_size={g} must divide in_features={n_in}")
    channel_params = None if g is not None else _params(W, spec)  # per channel: from the original W

    # 2. dead inputs: never seen non-zero -> any weight is fine; pin H so it stays invertible
    dead = torch.diag(H) == 0
    H[dead, dead] = 1
    W[:, dead] = 0

    # 3. static groups: parameters from W before any update
    static = [_params(W[:, i:i + g], spec) for i in range(0, n_in, g)] if (static_groups and g) else None

    # 4. act-order: most salient columns (largest H_ii) first
    perm = None
    if act_order:
        perm = torch.argsort(torch.diag(H), descending=True)
        W, H = W[:, perm], H[perm][:, perm]

    # 5. damping and the inverse Cholesky factor
    Hinv, damp_used, retries = damped_inverse_cholesky(H, damp, damp_step)

    Q = torch.zeros_like(W)
    losses = torch.zeros(n_out, device=W.device)
    n_groups = 1 if g is None else n_in // g
    scales = torch.zeros(n_out, n_groups, device=W.device)
    zeros = torch.zeros(n_out, n_groups, device=W.device)
    g_idx = torch.arange(n_in, device=W.device) // g if g else torch.zeros(n_in, dtype=torch.long, device=W.device)
    qp = channel_params
    if qp is not None:
        scales[:, 0], zeros[:, 0] = qp.scale[:, 0], qp.zero[:, 0]

    # 6-7. lazy blocks of columns
    stop = n_in if stop_after is None else stop_after
    for i1 in range(0, n_in, block_size):
        if i1 >= stop:
            Q[:, i1:] = W[:, i1:]  # teaching: remaining columns updated but not quantized
            break
        i2 = min(i1 + block_size, n_in)
        W1 = W[:, i1:i2].clone()
        Q1, Err1 = torch.zeros_like(W1), torch.zeros_like(W1)
        Hinv1 = Hinv[i1:i2, i1:i2]
        for i in range(min(i2, stop) - i1):
            col = i1 + i
            w, d = W1[:, i], Hinv1[i, i]
            if g is not None:
                if static is not None:
                    orig = int(perm[col]) if perm is not None else col
                    qp = static[orig // g]
                elif col % g == 0:  # a new group starts: parameters from W as of the last lazy update (as IST)
                    qp = _params(W[:, col:col + g], spec)
                    scales[:, col // g], zeros[:, col // g] = qp.scale[:, 0], qp.zero[:, 0]
            q = qp.fake_quantize(w.unsqueeze(1)).flatten()
            Q1[:, i] = q
            losses += (w - q) ** 2 / d ** 2 / 2
            err = (w - q) / d
            W1[:, i:] -= err.unsqueeze(1) @ Hinv1[i, i:].unsqueeze(0)
            Err1[:, i] = err
        if stop < i2:  # teaching stop inside this block: keep the updated, unquantized rest
            Q1[:, stop - i1:] = W1[:, stop - i1:]
        Q[:, i1:i2] = Q1
        W[:, i2:] -= Err1 @ Hinv[i1:i2, i2:]

    # 8. undo the permutation; record which group each original column used
    if perm is not None:
        inv = torch.argsort(perm)
        Q = Q[:, inv]
        if g is not None and static is None:
            g_idx = g_idx[inv]  # column perm[c] was quantized with group c // g
    if static is not None:
        for j, p in enumerate(static):
            scales[:, j], zeros[:, j] = p.scale[:, 0], p.zero[:, 0]
    keep_g_idx = g is not None and perm is not None and static is None
    return GPTQResult(weight=Q, scale=scales, zero=zeros, g_idx=g_idx if keep_g_idx else None, damp=damp_used,
                      damp_retries=retries, loss=float(losses.sum()), dead=int(dead.sum()))


def _options(recipe) -> dict:
    """GPTQ's knobs from `recipe` (another method's recipe, e.g. QuaRot's, falls back to these defaults)."""
    names = ("block_size", "damp", "act_order", "static_groups", "damp_step")
    return {name: recipe.knob(name, KNOBS[name]) for name in names}


def quantize_block(ctx: BlockContext, recipe, spec: Optional[QuantSpec] = None, roles=ROLES) -> None:
    """GPTQ on one block of the sequential engine (reusable by other methods, e.g. QuaRot's weights).

    A QuantLinear keeps its input transform and activation quantizer; only its weight is replaced."""
    spec = spec or recipe.weight_spec(include_zero=True)
    opts = _options(recipe)
    groups = ROLE_GROUPS if recipe.knob("true_sequential", KNOBS["true_sequential"]) else (tuple(ROLES),)
    for group in groups:
        group = [r for r in group if r in roles]
        if not group:
            continue
        # 1. Hessians of this group's inputs, with earlier groups already quantized
        stats = ctx.collect_hessians(group)
        for role in group:
            t0 = time.perf_counter()
            lin = ctx.block.get(role)
            res = gptq_quantize(lin.weight, stats[role].H, spec, **opts)
            err = relative_output_error(lin.weight, res.weight, stats[role].H)
            q = QuantLinear.from_linear(lin, spec, weight=res.weight, scale=res.scale, zero=res.zero,
                                        g_idx=res.g_idx, method="gptq")
            ctx.block.set(role, q)
            notes = []
            if res.damp_retries:
                notes.append(f"damp raised to {res.damp:g}")
                ctx.report.add_event(f"block {ctx.index} {role}: Cholesky failed {res.damp_retries}x at "
                                     f"damp={opts['damp']:g}; succeeded with damp={res.damp:g}")
            if res.dead:
                notes.append(f"{res.dead} dead inputs")
            if stats[role].tokens < lin.in_features:
                notes.append(f"rank-deficient H ({stats[role].tokens} tokens < {lin.in_features})")
            ctx.report.add_layer(ctx.index, role, ctx.name_of(role), err, time.perf_counter() - t0, spec.bits,
                                 notes="; ".join(notes))


def apply(model, layout, recipe, calib: torch.Tensor, *, device=None, batch_size: int = 8) -> QuantReport:
    """GPTQ every block linear in place (quantized outputs propagate block to block)."""
    report = QuantReport(recipe=str(recipe), method="gptq")
    run_sequential(model, layout, calib, lambda ctx: quantize_block(ctx, recipe), propagate=PROPAGATE,
                   report=report, device=device, batch_size=batch_size, desc="gptq")
    return report
