"""Real layers and whole models for the method notebooks (03-08): a layer's weight and inputs, its Hessian,
the input site with the strongest outliers, and model-level comparisons of quantized copies.

Every function returns numbers (tensors, dicts, DataFrames) and is tested headlessly; drawing is in
`dllmq.viz`. Errors: `relative_error_on_inputs` is the squared ratio ||X dW^T||^2 / ||X W^T||^2 of the
quantization reports; `relative_l2_error` the plain norm ratio ||dY|| / ||Y|| (dllmq.quant.report).
"""
from __future__ import annotations

import copy
import math
from typing import Optional, Sequence

import pandas as pd
import torch

from ..models.layout import ROLES
from ..quant.qlinear import QuantLinear
from ..quant.quantizer import fake_quantize
from ..quant.report import relative_l2_error
from ..quant.sequential import HessianAccumulator, run_sequential


def layer_inputs(model, calib: torch.Tensor, block: int, role: str, max_tokens: int = 4096) -> tuple:
    """(W, X): the weight of `role` in `block` and its inputs on `calib` (tokens, in), FP model."""
    from ..models import get_layout

    if role not in ROLES:
        raise ValueError(f"role={role!r} is unknown; allowed: {ROLES}")
    layout = get_layout(model)
    if not 0 <= block < len(layout.blocks):
        raise ValueError(f"block={block} is out of range; the model has {len(layout.blocks)} blocks")
    got = {}
    run_sequential(model, layout, calib, lambda ctx: got.update(ctx.collect_inputs([role], store_device="cpu")),
                   propagate="fp", blocks=[block], measure_block_error=False, desc="capture")
    x = got[role]
    step = max(1, x.shape[0] // max_tokens)
    return layout.blocks[block].get(role).weight.detach().float().cpu(), x[::step][:max_tokens].float()


def hessian(x: torch.Tensor) -> torch.Tensor:
    """GPTQ's H = 2/N X^T X of inputs x (tokens, in), one sequence per row block (float32)."""
    acc = HessianAccumulator(x.shape[-1], x.device)
    acc.add(x.unsqueeze(0))
    return acc.H


@torch.no_grad()
def linear_input(model, ids: torch.Tensor, block: int, role: str, sample: int = 0) -> torch.Tensor:
    """(T, C) input of block `block`'s `role` linear for sequence `sample` of `ids`, as its weight sees it
    (a QuantLinear's online transform applied, before activation quantization)."""
    from ..models import get_layout

    lin = get_layout(model).blocks[block].get(role)
    got = []
    if isinstance(lin, QuantLinear):
        handle = lin.add_input_observer(lambda x: got.append(x.detach()))
    else:
        handle = lin.register_forward_pre_hook(lambda m, a: got.append(a[0].detach()))
    try:
        device = next(model.parameters()).device
        model(ids[sample:sample + 1].to(device))
    finally:
        handle.remove()
    return got[0][0].float().cpu()


def linear_weight(model, block: int, role: str) -> torch.Tensor:
    """The weight [out, in] of block `block`'s `role` linear (float32, CPU)."""
    from ..models import get_layout

    return get_layout(model).blocks[block].get(role).weight.detach().float().cpu()


def per_token_error(x: torch.Tensor, bits: int = 4, sym: bool = False, clip_ratio: float = 1.0) -> torch.Tensor:
    """Relative error ‖Q(x_t) − x_t‖ / ‖x_t‖ of each token under per-token fake quantization."""
    q = fake_quantize(x, bits, sym=sym, granularity="token", clip_ratio=clip_ratio)
    return (q - x).norm(dim=-1) / x.norm(dim=-1).clamp_min(1e-12)


def layer_errors(x: torch.Tensor, w: torch.Tensor, w_bits: int = 4, a_bits: int = 4) -> dict:
    """Relative errors of per-token activations, per-channel weights and the output Q(X) Q(W)ᵀ."""
    xq = fake_quantize(x, a_bits, granularity="token") if a_bits < 16 else x
    wq = fake_quantize(w, w_bits, granularity="channel") if w_bits < 16 else w
    return {"act_error": relative_l2_error(x, xq), "weight_error": relative_l2_error(w, wq),
            "output_error": relative_l2_error(x @ w.T, xq @ wq.T),
            "act_absmax": float(x.abs().max()), "weight_absmax": float(w.abs().max())}


@torch.no_grad()
def outlier_site(model, calib: torch.Tensor, roles: Sequence[str] = ("q", "gate"), by: str = "ratio") -> tuple:
    """(block, role) whose input has the strongest outlier channels: largest max/median of the per-channel
    max|x| (by="ratio", SmoothQuant's target) or the largest max|x| (by="absmax", massive activations)."""
    from ..models import get_layout
    from ..quant.act_stats import collect_input_absmax

    if by not in ("ratio", "absmax"):
        raise ValueError(f"by={by!r} is unknown; allowed: 'ratio', 'absmax'")
    stats = collect_input_absmax(model, get_layout(model), calib, roles=tuple(roles), progress=False)
    score = {k: float(v.max() / v.median().clamp_min(1e-12)) if by == "ratio" else float(v.max())
             for k, v in stats.items()}
    return max(score, key=score.get)


@torch.no_grad()
def transform_error(model, eval_ids: torch.Tensor, transform) -> float:
    """Relative logits error after `transform(model_copy)` (an exact, full-precision rewrite gives ~1e-7)."""
    ref = _logits(model, eval_ids)
    m = copy.deepcopy(model)
    transform(m)
    return relative_l2_error(ref, _logits(m, eval_ids))


def _logits(model, ids):
    with torch.no_grad():
        return model(ids.to(next(model.parameters()).device)).logits.float().cpu()


def compare_recipes(model, recipes: Sequence, calib: Optional[torch.Tensor], eval_ids: torch.Tensor,
                    perplexity: bool = False, tok=None) -> pd.DataFrame:
    """A quantized copy per recipe; relative logits error vs the FP model on `eval_ids` (+ next-token
    perplexity for an autoregressive model). calib=None: each recipe draws its own calibration set (tok=).
    A data-free method (RTN) gets no calibration: with it, RTN only walks the blocks to measure layer errors,
    which this table does not show, and the quantized weights are the same."""
    from ..quant import Recipe, needs_calibration, quantize

    ref = _logits(model, eval_ids)
    rows = [{"recipe": "FP", "logits_error": 0.0}]
    if perplexity:
        rows[0]["perplexity"] = _ppl(ref, eval_ids)
    for r in recipes:
        recipe = Recipe.parse(r)
        qmodel, report = quantize(model, recipe, calib if needs_calibration(recipe.method) else None, tok=tok)
        out = _logits(qmodel, eval_ids)
        row = {"recipe": str(recipe), "logits_error": relative_l2_error(ref, out), "seconds": report.total_time_s}
        if perplexity:
            row["perplexity"] = _ppl(out, eval_ids)
        rows.append(row)
        del qmodel
    return pd.DataFrame(rows)


def _ppl(logits: torch.Tensor, ids: torch.Tensor) -> float:
    nll = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1))
    return math.exp(float(nll))


def tinybench_table(model, tok, recipes: Sequence, calib: Optional[torch.Tensor] = None, tasks=("tinybench",),
                    limit=None, **decoding) -> pd.DataFrame:
    """TinyBench accuracy per category (rows: FP then each recipe), via dllmq.evaluate.
    calib=None: each recipe draws the calibration set it names (the store key then says what was used)."""
    from ..eval import category_summary, evaluate
    from ..quant import Recipe, quantize

    def row(m, name):
        summary = category_summary(evaluate(m, tok, tasks=list(tasks), limit=limit, **decoding))
        return {"recipe": name, **dict(zip(summary["category"], summary["value"]))}

    rows = [row(model, "FP")]
    for r in recipes:
        qmodel, _ = quantize(model, Recipe.parse(r), calib, tok=tok)
        rows.append(row(qmodel, str(Recipe.parse(r))))
        del qmodel
    return pd.DataFrame(rows).set_index("recipe")


@torch.no_grad()
def perplexity(model, ids: torch.Tensor, window: int = 1024) -> float:
    """Next-token perplexity of an *autoregressive* model on a 1-D token stream, in non-overlapping
    windows (GPTQ's WikiText-2 protocol). Diffusion LMs have no next-token likelihood: use
    dllmq.loglikelihood for them."""
    from ..models import is_diffusion

    if is_diffusion(model):
        raise ValueError("perplexity needs an autoregressive model; for LLaDA/Dream use dllmq.loglikelihood")
    ids = ids.flatten()
    device = next(model.parameters()).device
    nll, count = 0.0, 0
    for start in range(0, ids.numel() - 1, window):
        chunk = ids[start:start + window].unsqueeze(0).to(device)  # (1, <= window)
        if chunk.shape[1] < 2:
            break
        logits = model(input_ids=chunk).logits.float()
        loss = torch.nn.functional.cross_entropy(logits[0, :-1], chunk[0, 1:], reduction="sum")
        nll, count = nll + float(loss), count + chunk.shape[1] - 1
    return float(torch.exp(torch.tensor(nll / count)))


def rtn_accuracy(model, tok, bits: int, group: Optional[int], tasks: Sequence[str] = ("tinybench_general",),
                 limit: Optional[int] = 20) -> str:
    """TinyBench accuracy of an RTN copy of `model` (for the bits/group widget); a one-line summary."""

    from ..eval import category_summary, evaluate
    from ..quant import quantize

    recipe = f"rtn:w{bits}a16" + ("" if group is None else f"g{group}")
    qmodel, _ = quantize(model, recipe)
    summary = category_summary(evaluate(qmodel, tok, tasks=list(tasks), limit=limit))
    return f"{recipe}: " + ", ".join(f"{r.category} {r.value:.3f} ± {r.stderr:.3f}" for r in summary.itertuples())
