"""Views for notebooks 06-08 (SmoothQuant, QuaRot, DuQuant): what each transform does to one layer's
activations and weights, what it buys for the whole model, and small widgets.

Layer level (pure tensor functions, testable without a kernel):
    linear_input      the input a block linear's weight sees (after any online transform), one sequence
    smooth_view       (X / s, W diag(s), s) at migration strength α
    rotate_view       (X Q, W Q) for Q = a random Hadamard, a random orthogonal matrix or the identity
    duquant_stages    X and W after smoothing, rotation, zigzag permutation, second rotation
    layer_errors      4-bit (or any) per-token activation error, per-channel weight error, output error
    alpha_sweep       those errors over a grid of α
Model level:
    compare_recipes   relative logits error (and perplexity for an AR model) of quantized copies
    tinybench_table   TinyBench accuracy per category of quantized copies (dllmq.evaluate)
Plots return matplotlib Figures (no pyplot state); widgets wire core ipywidgets to the functions above.
"""
from __future__ import annotations

import copy
import math
from typing import Sequence

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure

from ..quant.duquant import calibrate_transform, greedy_rotation
from ..quant.fold import relative_error
from ..quant.hadamard import hadamard_matrix, random_orthogonal_matrix, random_signs
from ..quant.qlinear import QuantLinear
from ..quant.quantizer import fake_quantize
from ..quant.smoothquant import smoothing_scales

ROTATIONS = ("none", "hadamard", "random")


# ----------------------------------------------------------------------------- layer level


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


def smooth_view(x: torch.Tensor, w: torch.Tensor, alpha: float) -> tuple:
    """(X / s, W diag(s), s) with SmoothQuant's s_j = max|X_j|^α / max|W_j|^(1−α)."""
    s = smoothing_scales(x.abs().amax(0), [w], alpha)
    return x / s, w * s, s


def rotate_view(x: torch.Tensor, w: torch.Tensor, kind: str = "hadamard", seed: int = 0) -> tuple:
    """(X Q, W Q): Q a random Hadamard D·H/√n, a random orthogonal matrix, or the identity ("none")."""
    if kind not in ROTATIONS:
        raise ValueError(f"kind={kind!r} is unknown; allowed: {ROTATIONS}")
    n = x.shape[-1]
    if kind == "none":
        return x, w
    Q = random_orthogonal_matrix(n, seed) if kind == "random" else random_signs(n, seed)[:, None] * hadamard_matrix(n)
    Q = Q.float()
    return x @ Q, w @ Q


def duquant_stages(x: torch.Tensor, w: torch.Tensor, alpha: float = 0.5, block_size: int = 128,
                   steps: int = 256, index: str = "channel", seed: int = 0) -> dict:
    """{stage: (X, W)} for original, smoothed, rotated, permuted, rotated again (each keeps X Wᵀ)."""
    xs, ws, _ = smooth_view(x, w, alpha)
    t = calibrate_transform(xs, block_size, steps, index, permutation_times=1, seed=seed)
    b = block_size

    def blocks(m, R):  # (..., C) @ (I ⊗ R)
        return (m.reshape(*m.shape[:-1], -1, b) @ R).reshape(m.shape)

    x1, w1 = blocks(xs, t.R1), blocks(ws, t.R1)
    x2, w2 = x1[:, t.perm], w1[:, t.perm]
    return {"original": (x, w), "smoothed": (xs, ws), "rotated": (x1, w1), "permuted": (x2, w2),
            "rotated again": (blocks(x2, t.R2), blocks(w2, t.R2))}


def per_token_error(x: torch.Tensor, bits: int = 4, sym: bool = False, clip_ratio: float = 1.0) -> torch.Tensor:
    """Relative error ‖Q(x_t) − x_t‖ / ‖x_t‖ of each token under per-token fake quantization."""
    q = fake_quantize(x, bits, sym=sym, granularity="token", clip_ratio=clip_ratio)
    return (q - x).norm(dim=-1) / x.norm(dim=-1).clamp_min(1e-12)


def layer_errors(x: torch.Tensor, w: torch.Tensor, w_bits: int = 4, a_bits: int = 4) -> dict:
    """Relative errors of per-token activations, per-channel weights and the output Q(X) Q(W)ᵀ."""
    xq = fake_quantize(x, a_bits, granularity="token") if a_bits < 16 else x
    wq = fake_quantize(w, w_bits, granularity="channel") if w_bits < 16 else w
    return {"act_error": relative_error(x, xq), "weight_error": relative_error(w, wq),
            "output_error": relative_error(x @ w.T, xq @ wq.T),
            "act_absmax": float(x.abs().max()), "weight_absmax": float(w.abs().max())}


def alpha_sweep(x: torch.Tensor, w: torch.Tensor, alphas: Sequence[float] = tuple(np.linspace(0, 1, 11)),
                w_bits: int = 4, a_bits: int = 4) -> pd.DataFrame:
    """layer_errors after smoothing at each α (α = 0: nothing migrates; α = 1: everything into W)."""
    rows = []
    for a in alphas:
        xs, ws, _ = smooth_view(x, w, float(a))
        rows.append({"alpha": round(float(a), 3), **layer_errors(xs, ws, w_bits, a_bits)})
    return pd.DataFrame(rows)


def block_maxima(x: torch.Tensor, block_size: int) -> torch.Tensor:
    """max |x| of each block of `block_size` consecutive channels (over all tokens)."""
    return x.abs().amax(0).reshape(-1, block_size).amax(1)


def greedy_peaks(x: torch.Tensor, block_size: int, steps: int, index: str = "channel", seed: int = 0) -> list:
    """Peak (max − min) of the [−1, b] view after 0, 1, ..., `steps` greedy steps (DuQuant keeps the best prefix)."""
    return greedy_rotation(x, block_size, steps, index, seed, return_peaks=True)[1]


# ----------------------------------------------------------------------------- model level


def fit_recipe(method: str, setting: str, model, **knobs) -> str:
    """The paper preset of `method` at `setting`, made to fit `model`: DuQuant's rotation block is the
    largest of 128, 64, ... dividing every linear input; QuaRot gets hadamard_fallback="orthogonal" when the
    head count has no Hadamard matrix (SmolLM2: 9 heads); RTN quantizes the attention inputs Q, K, V at the
    activation bits like the SmoothQuant and DuQuant presets (a like-for-like baseline). Extra knobs override."""
    from ..models import get_layout
    from ..quant import Recipe
    from ..quant.hadamard import is_supported

    layout = get_layout(model)
    recipe = Recipe.paper(method, setting) if method != "rtn" else Recipe.parse(f"rtn:{setting}")
    if method == "rtn" and recipe.a_bits < 16:
        recipe = recipe.with_(q_bits=recipe.a_bits, kv_bits=recipe.a_bits)
    extra = {}
    if method == "duquant":
        dims = (layout.hidden_size, layout.intermediate_size)
        extra["block_size"] = next(b for b in (128, 64, 32, 16, 8, 4) if all(d % b == 0 for d in dims))
    if method == "quarot" and not is_supported(layout.n_heads):
        extra["hadamard_fallback"] = "orthogonal"
    extra.update(knobs)
    return str(recipe.with_(knobs={**dict(recipe.knobs), **extra}) if extra else recipe)


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
    return relative_error(ref, _logits(m, eval_ids))


def _logits(model, ids):
    with torch.no_grad():
        return model(ids.to(next(model.parameters()).device)).logits.float().cpu()


def compare_recipes(model, recipes: Sequence, calib: torch.Tensor, eval_ids: torch.Tensor,
                    perplexity: bool = False) -> pd.DataFrame:
    """Quantize a deep copy per recipe; relative logits error vs the FP model on `eval_ids`
    (+ next-token perplexity for an autoregressive model)."""
    from ..quant import Recipe, quantize

    ref = _logits(model, eval_ids)
    rows = [{"recipe": "FP", "logits_error": 0.0}]
    if perplexity:
        rows[0]["perplexity"] = _ppl(ref, eval_ids)
    for r in recipes:
        qmodel, report = quantize(copy.deepcopy(model), Recipe.parse(r), calib)
        out = _logits(qmodel, eval_ids)
        row = {"recipe": str(Recipe.parse(r)), "logits_error": relative_error(ref, out), "seconds": report.total_time_s}
        if perplexity:
            row["perplexity"] = _ppl(out, eval_ids)
        rows.append(row)
        del qmodel
    return pd.DataFrame(rows)


def _ppl(logits: torch.Tensor, ids: torch.Tensor) -> float:
    nll = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1))
    return math.exp(float(nll))


def tinybench_table(model, tok, recipes: Sequence, calib: torch.Tensor, tasks=("tinybench",),
                    limit=None, **decoding) -> pd.DataFrame:
    """TinyBench accuracy per category (rows: FP then each recipe), via dllmq.evaluate."""
    from ..eval import category_summary, evaluate
    from ..quant import Recipe, quantize

    def row(m, name):
        summary = category_summary(evaluate(m, tok, tasks=list(tasks), limit=limit, **decoding))
        return {"recipe": name, **dict(zip(summary["category"], summary["value"]))}

    rows = [row(model, "FP")]
    for r in recipes:
        qmodel, _ = quantize(copy.deepcopy(model), Recipe.parse(r), calib)
        rows.append(row(qmodel, str(Recipe.parse(r))))
        del qmodel
    return pd.DataFrame(rows).set_index("recipe")


# ----------------------------------------------------------------------------- plots


def plot_channel_ranges(views: dict, title: str = "") -> Figure:
    """Per input channel: max|X_j| (top) and max|W_j| (bottom), one column per view {name: (X, W)}."""
    fig = Figure(figsize=(4.2 * len(views), 5.2))
    axes = fig.subplots(2, len(views), squeeze=False, sharey="row")
    for k, (name, (x, w)) in enumerate(views.items()):
        xa, wa = x.abs().amax(0).numpy(), w.abs().amax(0).numpy()
        axes[0, k].bar(np.arange(len(xa)), xa, width=1.0, color="tab:red")
        axes[0, k].set_title(f"{name}: activations max {xa.max():.3g}", fontsize=9)
        axes[1, k].bar(np.arange(len(wa)), wa, width=1.0, color="tab:blue")
        axes[1, k].set_title(f"weights max {wa.max():.3g}", fontsize=9)
        axes[1, k].set_xlabel("input channel j")
        for ax in axes[:, k]:
            ax.set_yscale("log")
    axes[0, 0].set_ylabel("max |X_j| over tokens")
    axes[1, 0].set_ylabel("max |W_j| over rows")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_alpha_sweep(table: pd.DataFrame, title: str = "") -> Figure:
    """Activation, weight and output errors against α (log scale)."""
    fig = Figure(figsize=(6, 3.6))
    ax = fig.subplots()
    for col, c in (("act_error", "tab:red"), ("weight_error", "tab:blue"), ("output_error", "k")):
        ax.plot(table["alpha"], table[col], marker="o", color=c, label=col.replace("_", " "))
    best = table.loc[table["output_error"].idxmin()]
    ax.axvline(best["alpha"], color="0.6", ls="--", label=f"best α = {best['alpha']:.2f}")
    ax.set_yscale("log")
    ax.set_xlabel("migration strength α")
    ax.set_ylabel("relative error")
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_token_profile(views: dict, token: int, title: str = "") -> Figure:
    """|x| of one token over the channels, one panel per view {name: X}: rotation spreads a spike."""
    fig = Figure(figsize=(4.2 * len(views), 3.2))
    axes = fig.subplots(1, len(views), squeeze=False, sharey=True)[0]
    for ax, (name, x) in zip(axes, views.items()):
        v = x[token].abs().numpy()
        ax.bar(np.arange(len(v)), v, width=1.0)
        err = float(per_token_error(x[token:token + 1], 4)[0])
        ax.set_title(f"{name}: max {v.max():.3g}, 4-bit error {err:.3f}", fontsize=9)
        ax.set_xlabel("channel")
        ax.set_yscale("log")
    axes[0].set_ylabel(f"|x| of token {token}")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_stage_summary(stages: dict, block_size: int, title: str = "") -> Figure:
    """DuQuant stages: max|x| per channel block (left) and per-token 4-bit error (right)."""
    fig = Figure(figsize=(11, 3.6))
    ax1, ax2 = fig.subplots(1, 2)
    names = list(stages)
    for k, name in enumerate(names):
        x = stages[name][0]
        m = block_maxima(x, block_size).numpy()
        ax1.plot(np.arange(len(m)), m, marker="o", ms=3, label=name)
        e = per_token_error(x, 4).numpy()
        ax2.boxplot(e, positions=[k], widths=0.6, showfliers=True)
    ax1.set_yscale("log")
    ax1.set_xlabel(f"channel block ({block_size} channels)")
    ax1.set_ylabel("max |x| in block")
    ax1.legend(fontsize=7)
    ax2.set_xticks(range(len(names)))
    ax2.set_xticklabels(names, rotation=20, fontsize=8)
    ax2.set_yscale("log")
    ax2.set_ylabel("per-token 4-bit rel. error")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_peaks(peaks: dict, title: str = "") -> Figure:
    """Greedy rotation: peak (max − min) after each step, one line per {label: peaks}."""
    fig = Figure(figsize=(6, 3.4))
    ax = fig.subplots()
    for label, p in peaks.items():
        ax.plot(np.arange(len(p)), p, marker=".", label=label)
    ax.set_xlabel("greedy steps")
    ax.set_ylabel("peak = max − min")
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_accuracy(table: pd.DataFrame, title: str = "TinyBench") -> Figure:
    """Grouped bars: accuracy per category (columns) for each recipe (rows)."""
    fig = Figure(figsize=(7, 3.6))
    ax = fig.subplots()
    cats = list(table.columns)
    width = 0.8 / max(1, len(table))
    for k, (name, row) in enumerate(table.iterrows()):
        ax.bar(np.arange(len(cats)) + k * width, row.values, width, label=name)
    ax.set_xticks(np.arange(len(cats)) + 0.4 - width / 2)
    ax.set_xticklabels(cats)
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- widgets


def _panel(controls: list, draw):
    """VBox(controls + Output); `draw(**values)` returns a Figure (or text) redrawn on every change."""
    import ipywidgets as W
    from IPython.display import display

    out = W.Output()

    def redraw(*_):
        out.clear_output(wait=True)
        with out:
            display(draw(**{c.description.split(" ")[0]: c.value for c in controls}))

    for c in controls:
        c.observe(redraw, names="value")
    redraw()
    return W.VBox([W.HBox(controls), out])


def alpha_widget(x: torch.Tensor, w: torch.Tensor, title: str = ""):
    """Slider α and bit-width: channel ranges of X/s and W·s, with the 4-bit layer errors in the title."""
    import ipywidgets as W

    def draw(alpha, bits):
        xs, ws, _ = smooth_view(x, w, alpha)
        e = layer_errors(xs, ws, bits, bits)
        return plot_channel_ranges({f"α={alpha:.2f}": (xs, ws)},
                                   f"{title} W{bits}A{bits}: act err {e['act_error']:.3f}, weight err "
                                   f"{e['weight_error']:.3f}, output err {e['output_error']:.3f}")

    return _panel([W.FloatSlider(value=0.5, min=0.0, max=1.0, step=0.05, description="alpha"),
                   W.Dropdown(options=[8, 6, 4], value=4, description="bits")], draw)


def rotation_widget(x: torch.Tensor, w: torch.Tensor, title: str = ""):
    """Pick a token and a rotation: |x| of that token before and after, with 4-bit errors."""
    import ipywidgets as W

    def draw(token, kind):
        xr, _ = rotate_view(x, w, kind)
        return plot_token_profile({"original": x, kind: xr}, token, title)

    top = int(x.abs().amax(-1).argmax())
    return _panel([W.IntSlider(value=top, min=0, max=x.shape[0] - 1, description="token"),
                   W.Dropdown(options=["hadamard", "random", "none"], value="hadamard", description="kind")], draw)


def duquant_widget(x: torch.Tensor, w: torch.Tensor, block_size: int, title: str = ""):
    """Rotation steps and the greedy index: block maxima and per-token 4-bit error of each stage."""
    import ipywidgets as W

    def draw(steps, index):
        return plot_stage_summary(duquant_stages(x, w, 0.5, block_size, steps, index), block_size,
                                  f"{title} ({steps} steps, {index} index)")

    return _panel([W.IntSlider(value=16, min=0, max=128, step=8, description="steps"),
                   W.Dropdown(options=["channel", "row"], value="channel", description="index")], draw)


__all__ = ["fit_recipe", "outlier_site", "transform_error", "linear_input", "linear_weight", "smooth_view", "rotate_view", "duquant_stages", "per_token_error",
           "layer_errors", "alpha_sweep", "block_maxima", "greedy_peaks", "compare_recipes", "tinybench_table",
           "plot_channel_ranges", "plot_alpha_sweep", "plot_token_profile", "plot_stage_summary", "plot_peaks",
           "plot_accuracy", "alpha_widget", "rotation_widget", "duquant_widget"]
