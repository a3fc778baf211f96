"""AWQ: Activation-aware Weight Quantization (Lin, Tang, Tang, Yang, Dang, Gan, Han; arXiv 2306.00978),
as implemented in mit-han-lab/llm-awq (auto_scale.py, auto_clip.py) and ported to LLaDA by QDLM.

Idea: a few input channels carry large activations; their weights matter most. Scaling such a channel's
weight column up by s_j (and its input down by s_j) keeps the FP output but shrinks that weight's
relative rounding error. For a group of linears sharing one input X and fed by an operation `prev`:

    Y = X W^T = (X diag(s)^-1) (W diag(s))^T            s is folded into `prev` (norm weight or linear rows)

Symbols: x_mean_j = mean |X_j| over calibration tokens, r in {0, 1/20, ..., 19/20} the grid ratio,
s = x_mean^r / sqrt(max(x_mean^r) min(x_mean^r)), Q the final weight quantizer (asymmetric g128).

Per block (full-precision outputs propagate to the next block):
    1. run the FP block once; cache the inputs of q (= k, v), o, gate (= up), down and the block output
    2. for each scaling group, in data-flow order (from the Layout, never through the SiLU branch):
           attn_norm -> q, k, v      loss on the attention module's output (= o's output; knob loss)
           v -> o                    loss on o's output; only when v and o weights have the same shape (no GQA)
           mlp_norm -> gate, up      loss on the MLP module's output (= down's output; knob loss)
           up -> down                loss on down's output
       try every r: W <- Q(W diag(s)) diag(s)^-1 for the group, loss = mean (Y_fp - Y)^2; keep the best s
       fold it: prev /= s (norm weight, or the rows of the previous linear), W <- W diag(s); cached X /= s
    3. clip search for every linear except q, k: per output row and group, max |w| shrunk by
       (1 - i/20), i = 0..9; keep the clamp minimising the group's partial-output MSE on 512 tokens
    4. quantize every linear with Q (RTN on the scaled, clipped weights)
Knobs: n_grid 20, clip True, clip_grid 20, max_shrink 0.5, clip_tokens 512 (+ module: scale True, oc_batch 256),
loss "module" | "block": the objective of the two norm groups. "module" is llm-awq's (`module2inspect` =
self_attn for q/k/v and mlp for gate/up, fed the cached FP input of the group); "block" measures the whole
block's output instead (dllmq's earlier objective). QDLM's LLaDA port passes the whole block but feeds it the
*normed* input of q (resp. gate), a third objective that is not modelled (docs/fidelity.md).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F

from ..models.layout import ROLES
from .fold import scale_input, scale_norm, scale_output
from .qlinear import QuantLinear
from .quantizer import QuantSpec, fake_quantize
from .report import QuantReport, relative_error_on_inputs
from .sequential import BlockContext, run_sequential

PROPAGATE = "fp"
# llm-awq's defaults: a 20-point grid for the scale exponent, then the clip search (20 shrink steps down to
# 50%, on 512 tokens); scale=False / clip=False switch a stage off; oc_batch bounds the clip search's memory.
KNOBS = dict(n_grid=20, clip=True, clip_grid=20, max_shrink=0.5, clip_tokens=512, scale=True, oc_batch=256,
             loss="module")
LOSSES = ("module", "block")
# the linear whose output is the output of the module llm-awq inspects for a norm group (its last linear)
MODULE_OUTPUT = {"attn_norm": "o", "mlp_norm": "down"}
FEATURE_ROLE = {"q": "q", "k": "q", "v": "q", "o": "o", "gate": "gate", "up": "gate", "down": "down"}
NO_CLIP_ROLES = ("q", "k")  # llm-awq skips clipping of query/key projections


@dataclass(frozen=True)
class ScaleGroup:
    prev: str  # "attn_norm", "mlp_norm" or the role of the previous linear ("v", "up")
    roles: tuple  # linears whose input columns are scaled
    inspect: str  # "block" (the block output), "module" (the output of `MODULE_OUTPUT[prev]` with the whole
    #               block run) or a role (that linear applied to the cached inputs)


def check_loss(loss: str) -> str:
    if loss not in LOSSES:
        raise ValueError(f"knob loss={loss!r} is unknown; allowed: {LOSSES}")
    return loss


def scaling_groups(block, loss: str = "module") -> tuple[list, list]:
    """(groups, skipped notes) for one BlockLayout; `loss` sets the objective of the two norm groups."""
    check_loss(loss)
    groups = [ScaleGroup("attn_norm", ("q", "k", "v"), loss)]
    skipped = []
    v, o = block.get("v"), block.get("o")
    if tuple(v.weight.shape) == tuple(o.weight.shape):
        groups.append(ScaleGroup("v", ("o",), "o"))
    else:
        skipped.append(f"v->o scaling skipped: v {tuple(v.weight.shape)} and o {tuple(o.weight.shape)} differ (GQA)")
    groups += [ScaleGroup("mlp_norm", ("gate", "up"), loss), ScaleGroup("up", ("down",), "down")]
    return groups, skipped


def _fake_q_scaled(w: torch.Tensor, s: torch.Tensor, spec: QuantSpec) -> torch.Tensor:
    """Q(W diag(s)) diag(s)^-1 in float32."""
    return fake_quantize(w.float() * s, spec) / s


def module_outputs(ctx: BlockContext, role: str) -> list:
    """Outputs of the linear `role` (one tensor per calibration batch) when the whole block runs: o's output
    is the attention module's output, down's the MLP's (what enters the residual stream)."""
    got = []
    handle = ctx.block.get(role).register_forward_hook(lambda m, args, out: got.append(out.detach().float()))
    try:
        ctx.run()
    finally:
        handle.remove()
    return got


def _group_loss(ctx: BlockContext, group: ScaleGroup, x: torch.Tensor, ref) -> float:
    """MSE between the FP reference and the current (group-quantized) output."""
    if group.inspect == "block":
        return batched_mse(ctx.run(), ctx.fp_outputs)
    if group.inspect == "module":
        return batched_mse(module_outputs(ctx, MODULE_OUTPUT[group.prev]), ref)
    lin = ctx.block.get(group.inspect)
    return float((F.linear(x, lin.weight.float()) - ref).pow(2).mean())


def batched_mse(ys: list, refs: list) -> float:
    num = sum((y.float() - r.float()).pow(2).sum().item() for y, r in zip(ys, refs))
    return num / sum(r.numel() for r in refs)


@torch.no_grad()
def search_scale(ctx: BlockContext, group: ScaleGroup, x: torch.Tensor, spec: QuantSpec, n_grid: int = 20):
    """Grid search of the AWQ ratio for one group. Returns (best s, best ratio, losses per ratio)."""
    lins = [ctx.block.get(r) for r in group.roles]
    originals = [lin.weight.data.clone() for lin in lins]
    xf = x.float()
    x_mean = xf.abs().mean(0)  # (in,)  mean |x| per input channel
    ref = None
    if group.inspect == "module":
        ref = module_outputs(ctx, MODULE_OUTPUT[group.prev])  # FP: nothing of this group is quantized yet
    elif group.inspect != "block":
        ref = F.linear(xf, ctx.block.get(group.inspect).weight.float())
    losses, best = [], (float("inf"), None, None)
    try:
        for k in range(n_grid):
            ratio = k / n_grid
            s = x_mean.pow(ratio).clamp(min=1e-4)
            s = s / (s.max() * s.min()).sqrt()
            for lin, w in zip(lins, originals):
                lin.weight.data = _fake_q_scaled(w, s, spec).to(w.dtype)
            loss = _group_loss(ctx, group, xf, ref)
            losses.append(loss)
            if loss < best[0]:
                best = (loss, s.clone(), ratio)
    finally:
        for lin, w in zip(lins, originals):
            lin.weight.data = w
    if best[1] is None:
        raise RuntimeError(f"AWQ scale search produced no finite loss for block {ctx.index} {group.roles} "
                           "(NaN activations or weights?)")
    return best[1], best[2], losses


@torch.no_grad()
def apply_scale(ctx: BlockContext, group: ScaleGroup, s: torch.Tensor) -> None:
    """Fold s (fold.py): prev /= s (norm weight, or output rows and bias of the previous linear), W <- W diag(s)."""
    if group.prev in ("attn_norm", "mlp_norm"):
        scale_norm(ctx.block.attn_norm if group.prev == "attn_norm" else ctx.block.mlp_norm, s)
    else:
        scale_output(ctx.block.get(group.prev), s)
    for role in group.roles:
        scale_input(ctx.block.get(role), s)


@torch.no_grad()
def search_clip(w: torch.Tensor, x: torch.Tensor, spec: QuantSpec, n_grid: int = 20, max_shrink: float = 0.5,
                n_tokens: int = 512, oc_batch: int = 256) -> torch.Tensor:
    """Best clamp max |w| per (row, group): shape (out, n_groups, 1). x: inputs (tokens, in)."""
    out_f, in_f = w.shape
    g = spec.group_size if spec.granularity == "group" else in_f
    step = max(1, x.shape[0] // n_tokens)
    x = x[0::step][:n_tokens].float()  # (t, in)  strided token sample
    xg = x.view(x.shape[0], in_f // g, g).transpose(0, 1)  # (n_groups, t, g)
    best_max = []
    for o1 in range(0, out_f, oc_batch):
        wb = w[o1:o1 + oc_batch].float().view(-1, in_f // g, g)  # (ob, n_groups, g)
        org_max = wb.abs().amax(dim=-1, keepdim=True)  # (ob, n_groups, 1)
        org_out = torch.bmm(xg, wb.permute(1, 2, 0))  # (n_groups, t, ob)
        best = org_max.clone()
        min_err = torch.full(org_max.shape[:2], float("inf"), device=w.device)  # (ob, n_groups)
        for i in range(int(max_shrink * n_grid)):
            max_val = org_max * (1 - i / n_grid)
            qw = fake_quantize(torch.clamp(wb, -max_val, max_val).reshape(wb.shape[0], in_f), spec)
            cur = torch.bmm(xg, qw.view_as(wb).permute(1, 2, 0))  # (n_groups, t, ob)
            err = (cur - org_out).pow(2).mean(dim=1).T  # (ob, n_groups)
            better = err < min_err
            min_err = torch.where(better, err, min_err)
            best = torch.where(better.unsqueeze(-1), max_val, best)
        best_max.append(best)
    return torch.cat(best_max)


@torch.no_grad()
def apply_clip(lin, max_val: torch.Tensor) -> None:
    w = lin.weight.data
    wg = w.float().view(w.shape[0], max_val.shape[1], -1)  # (out, n_groups, g)
    lin.weight.data = torch.clamp(wg, -max_val, max_val).view_as(w).to(w.dtype)


def scale_block(ctx: BlockContext, spec: QuantSpec, feats: dict, n_grid: int = 20, loss: str = "module") -> dict:
    """Steps 2 of the algorithm box on one block: search and fold every group's scales (in place).
    `feats` (role -> cached inputs) are divided by s. Returns {prev->roles: (ratio, losses)}."""
    groups, skipped = scaling_groups(ctx.block, loss)
    for note in skipped:
        ctx.report.add_event(f"block {ctx.index}: {note}")
    curves = {}
    for group in groups:
        key = FEATURE_ROLE[group.roles[0]]
        s, ratio, losses = search_scale(ctx, group, feats[key], spec, n_grid)
        apply_scale(ctx, group, s)
        feats[key] = feats[key] / s.to(feats[key].dtype)
        curves[f"{group.prev}->{'+'.join(group.roles)}"] = {"ratio": ratio, "losses": losses}
    return curves


def process_block(ctx: BlockContext, recipe, spec: Optional[QuantSpec] = None) -> None:
    """The whole AWQ algorithm box on one block of the sequential engine."""
    spec = spec or recipe.weight_spec()
    t0 = time.perf_counter()
    # 1. inputs of each distinct linear input (FP block, before any scaling)
    feats = ctx.collect_inputs(["q", "o", "gate", "down"])
    # 2. activation-aware scales
    if recipe.knob("scale"):
        curves = scale_block(ctx, spec, feats, recipe.knob("n_grid"), check_loss(recipe.knob("loss")))
        ctx.report.extra.setdefault("awq_scales", {})[ctx.index] = curves
    reference = {r: ctx.block.get(r).weight.data.clone() for r in ROLES}  # scaled, unclipped
    # 3. clipping
    if recipe.knob("clip"):
        for role in ROLES:
            if role in NO_CLIP_ROLES:
                continue
            lin = ctx.block.get(role)
            max_val = search_clip(lin.weight, feats[FEATURE_ROLE[role]], spec, recipe.knob("clip_grid"),
                                  recipe.knob("max_shrink"), recipe.knob("clip_tokens"),
                                  recipe.knob("oc_batch"))
            apply_clip(lin, max_val)
    # 4. quantize
    share = (time.perf_counter() - t0) / len(ROLES)
    for role in ROLES:
        t1 = time.perf_counter()
        lin = ctx.block.get(role)
        q = QuantLinear.from_linear(lin, spec, method="awq")
        err = relative_error_on_inputs(reference[role], q.weight, feats[FEATURE_ROLE[role]])
        ctx.block.set(role, q)
        ctx.report.add_layer(ctx.index, role, ctx.name_of(role), err, share + time.perf_counter() - t1, spec.bits)


def apply(model, layout, recipe, calib: torch.Tensor, *, device=None, batch_size: int = 8) -> QuantReport:
    """AWQ every block linear in place (full-precision outputs propagate block to block)."""
    report = QuantReport(recipe=str(recipe), method="awq")
    run_sequential(model, layout, calib, lambda ctx: process_block(ctx, recipe), propagate=PROPAGATE,
                   report=report, device=device, batch_size=batch_size, desc="awq")
    return report
