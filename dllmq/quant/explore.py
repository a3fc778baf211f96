"""Teaching helpers behind notebooks 03-05: measurements on single layers, their plots and widgets.

Every function returns numbers (a tensor or a pandas DataFrame) and is tested headlessly; the `plot_*`
functions draw one figure from those numbers, and the widgets only redraw them.
Errors are relative output errors ||X dW^T||^2 / ||X W^T||^2 on real layer inputs X (report.py).
"""
from __future__ import annotations

from typing import Optional, Sequence

import pandas as pd
import torch

from ..models.layout import ROLES
from .gptq import gptq_quantize
from .quantizer import QuantSpec, compute_qparams, fake_quantize, fake_quantize_spec
from .report import relative_error_on_inputs, relative_output_error
from .sequential import HessianAccumulator, run_sequential


# ----------------------------------------------------------------------------------------------
# Real layers

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


# ----------------------------------------------------------------------------------------------
# Notebook 03: uniform quantization

def grid_levels(bits: int, lo: float, hi: float, sym: bool = False, sym_convention: str = "signed") -> torch.Tensor:
    """The values a `bits` quantizer fitted to the range [lo, hi] can output (sorted)."""
    spec = QuantSpec(bits=bits, sym=sym, sym_convention=sym_convention)
    qp = compute_qparams(torch.tensor([[lo, hi]]), spec)
    q = torch.arange(spec.qmin, spec.qmax + 1, dtype=torch.float32)
    return (qp.scale * (q - qp.zero)).flatten()


def granularity_errors(w: torch.Tensor, x: Optional[torch.Tensor] = None, bits: int = 4,
                       group_sizes: Sequence[int] = (128, 64, 32)) -> pd.DataFrame:
    """Relative error of one weight at per-tensor, per-channel and per-group scales (output error if x)."""
    rows = []
    cases = [("per-tensor", dict(granularity="tensor")), ("per-channel", dict(granularity="channel"))]
    cases += [(f"g{g}", dict(granularity="group", group_size=g)) for g in group_sizes if w.shape[1] % g == 0]
    for name, kw in cases:
        wq = fake_quantize(w, bits, **kw)
        err = relative_error_on_inputs(w, wq, x) if x is not None else \
            float((wq - w).pow(2).sum() / w.pow(2).sum())
        rows.append({"granularity": name, "bits": bits, "rel_error": err})
    return pd.DataFrame(rows)


def outlier_sweep(w: torch.Tensor, magnitudes: Sequence[float], bits: int = 4, group_size: int = 32) -> pd.DataFrame:
    """Plant one outlier of each magnitude (times max|w|) at w[0, 0] and measure the error of the *other*
    weights under each granularity: per-tensor scales let one value ruin every row."""
    rows = []
    base = w.abs().max()
    for m in magnitudes:
        w2 = w.clone()
        w2[0, 0] = m * base
        keep = torch.ones_like(w2, dtype=torch.bool)
        keep[0, 0] = False
        for name, kw in (("per-tensor", dict(granularity="tensor")), ("per-channel", dict(granularity="channel")),
                         (f"g{group_size}", dict(granularity="group", group_size=group_size))):
            d = (fake_quantize(w2, bits, **kw) - w2)[keep]
            rows.append({"outlier_x_max": m, "granularity": name,
                         "rel_error_others": float(d.pow(2).sum() / w2[keep].pow(2).sum())})
    return pd.DataFrame(rows)


def error_grid(w: torch.Tensor, x: torch.Tensor, bits_list: Sequence[int] = (2, 3, 4, 8),
               group_sizes: Sequence[Optional[int]] = (None, 128, 64, 32), sym: bool = False) -> pd.DataFrame:
    """Output error of RTN for every (bits, group size); group None = per-channel."""
    rows = []
    for bits in bits_list:
        for g in group_sizes:
            if g is not None and w.shape[1] % g:
                continue
            spec = QuantSpec(bits=bits, sym=sym, granularity="channel" if g is None else "group", group_size=g)
            rows.append({"bits": bits, "group": "channel" if g is None else g,
                         "rel_error": relative_error_on_inputs(w, fake_quantize_spec(w, spec), x)})
    return pd.DataFrame(rows)


def clip_curve(w: torch.Tensor, x: torch.Tensor, bits: int = 3, group_size: Optional[int] = None,
               ratios: Sequence[float] = tuple(1 - i / 20 for i in range(11))) -> pd.DataFrame:
    """Output error vs a fixed clip ratio, plus the MSE-grid choice (ratio 'mse')."""
    gran = "channel" if group_size is None else "group"
    rows = []
    for r in list(ratios) + ["mse"]:
        spec = QuantSpec(bits=bits, granularity=gran, group_size=group_size, clip_ratio=r)
        rows.append({"clip": r, "rel_error": relative_error_on_inputs(w, fake_quantize_spec(w, spec), x)})
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------------------------
# Notebook 04: GPTQ column by column

def gptq_column_curve(w: torch.Tensor, H: torch.Tensor, spec: QuantSpec, points: int = 16,
                      **opts) -> pd.DataFrame:
    """Output error after quantizing the first k columns: RTN (rest left FP) vs GPTQ (rest updated by the
    error feedback, not yet quantized). GPTQ's curve stays low because later columns absorb the error."""
    n = w.shape[1]
    ks = sorted(set(int(round(n * i / points)) for i in range(points + 1)))
    rtn = fake_quantize_spec(w, spec)
    rows = []
    for k in ks:
        mixed = torch.cat([rtn[:, :k], w[:, k:]], dim=1)
        g = gptq_quantize(w, H, spec, stop_after=k, **opts).weight
        rows.append({"columns": k, "rtn": relative_output_error(w, mixed, H),
                     "gptq": relative_output_error(w, g, H)})
    return pd.DataFrame(rows)


def gptq_options_table(w: torch.Tensor, H: torch.Tensor, spec: QuantSpec) -> pd.DataFrame:
    """RTN vs GPTQ variants (act-order, static groups, damping) on one layer."""
    rows = [{"variant": "RTN", "rel_error": relative_output_error(w, fake_quantize_spec(w, spec), H)}]
    for name, kw in [("GPTQ", {}), ("GPTQ act-order", {"act_order": True}),
                     ("GPTQ act-order + static groups", {"act_order": True, "static_groups": True}),
                     ("GPTQ damp 0.1", {"damp": 0.1}), ("GPTQ damp 1.0", {"damp": 1.0})]:
        res = gptq_quantize(w, H, spec, **kw)
        rows.append({"variant": name, "rel_error": relative_output_error(w, res.weight, H)})
    df = pd.DataFrame(rows)
    df["vs_rtn"] = df["rel_error"] / df["rel_error"].iloc[0]
    return df


# ----------------------------------------------------------------------------------------------
# Notebook 05: AWQ on one layer

def salient_channels(x: torch.Tensor, frac: float = 0.01) -> torch.Tensor:
    """Indices of the top `frac` input channels by mean |x| (AWQ's activation-based salience)."""
    k = max(1, int(round(frac * x.shape[1])))
    return x.abs().mean(0).topk(k).indices


def salient_experiment(w: torch.Tensor, x: torch.Tensor, bits: int = 3, group_size: Optional[int] = None,
                       frac: float = 0.01, scale: float = 2.0, seed: int = 0) -> pd.DataFrame:
    """AWQ's motivating experiment: keep 1% of the input channels in FP (salient by activation, by weight
    norm, or random), or instead multiply the salient columns by `scale` before quantizing."""
    spec = QuantSpec(bits=bits, granularity="channel" if group_size is None else "group", group_size=group_size)
    rtn = fake_quantize_spec(w, spec)
    k = max(1, int(round(frac * w.shape[1])))
    g = torch.Generator().manual_seed(seed)
    choices = {"activation (AWQ)": salient_channels(x, frac), "weight norm": w.abs().mean(0).topk(k).indices,
               "random": torch.randperm(w.shape[1], generator=g)[:k]}
    rows = [{"variant": "RTN", "rel_error": relative_error_on_inputs(w, rtn, x)}]
    for name, idx in choices.items():
        keep = rtn.clone()
        keep[:, idx] = w[:, idx]
        rows.append({"variant": f"keep 1% FP: {name}", "rel_error": relative_error_on_inputs(w, keep, x)})
    s = torch.ones(w.shape[1])
    s[choices["activation (AWQ)"]] = scale
    scaled = fake_quantize_spec(w * s, spec) / s
    rows.append({"variant": f"scale salient x{scale:g} (no FP weights)", "rel_error": relative_error_on_inputs(w, scaled, x)})
    return pd.DataFrame(rows)


def awq_ratio_curve(w: torch.Tensor, x: torch.Tensor, spec: QuantSpec, n_grid: int = 20) -> pd.DataFrame:
    """AWQ's grid on one layer: s = mean|x|^r (geometric-mean normalised), loss = output MSE."""
    x_mean = x.abs().mean(0)
    y = x @ w.T
    rows = []
    for k in range(n_grid):
        r = k / n_grid
        s = x_mean.pow(r).clamp(min=1e-4)
        s = s / (s.max() * s.min()).sqrt()
        wq = fake_quantize_spec(w * s, spec) / s
        rows.append({"ratio": r, "mse": float((x @ wq.T - y).pow(2).mean()),
                     "rel_error": relative_error_on_inputs(w, wq, x)})
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------------------------
# Plots (matplotlib) and widgets (core ipywidgets)

def plot_levels(x: torch.Tensor, bits: int, sym: bool = False, sym_convention: str = "signed", ax=None):
    """Histogram of x with the quantization grid fitted to its range drawn on top."""
    import matplotlib.pyplot as plt

    ax = ax or plt.subplots(figsize=(7, 2.8))[1]
    x = x.flatten().float()
    ax.hist(x.numpy(), bins=120, color="0.7")
    for level in grid_levels(bits, float(x.min()), float(x.max()), sym, sym_convention):
        ax.axvline(float(level), color="tab:red", lw=0.8, alpha=0.7)
    kind = "asym" if not sym else f"sym ({sym_convention})"
    ax.set(title=f"{bits}-bit {kind} grid over the values", xlabel="value", ylabel="count")
    return ax


def plot_error_grid(df: pd.DataFrame, ax=None, title: str = ""):
    """Relative output error vs bits, one line per group size (log scale)."""
    import matplotlib.pyplot as plt

    ax = ax or plt.subplots(figsize=(6, 3.5))[1]
    for group, part in df.groupby("group", sort=False):
        ax.plot(part["bits"], part["rel_error"], marker="o", label=f"group {group}")
    ax.set(yscale="log", xlabel="weight bits", ylabel="relative output error", title=title)
    ax.legend(fontsize=8)
    return ax


def plot_curves(df: pd.DataFrame, x: str, ys: Sequence[str], ax=None, title: str = "", logy: bool = True):
    """Generic line plot of DataFrame columns `ys` against `x`."""
    import matplotlib.pyplot as plt

    ax = ax or plt.subplots(figsize=(6, 3.5))[1]
    for y in ys:
        ax.plot(df[x], df[y], marker=".", label=y)
    ax.set(xlabel=x, title=title, yscale="log" if logy else "linear")
    ax.legend(fontsize=8)
    return ax


def bits_group_widget(w: torch.Tensor, x: torch.Tensor, extra=None):
    """Sliders for bits and group size; redraws the error of this layer (and optionally `extra(bits, group)`
    -> text, e.g. a TinyBench accuracy) into an Output."""
    import ipywidgets as W
    import matplotlib.pyplot as plt
    from IPython.display import display

    groups = ["channel"] + [g for g in (256, 128, 64, 32, 16) if w.shape[1] % g == 0]
    bits = W.IntSlider(value=4, min=2, max=8, description="bits")
    group = W.Dropdown(options=groups, value=groups[1] if len(groups) > 1 else "channel", description="group")
    sym = W.Checkbox(value=False, description="symmetric")
    out = W.Output()

    def redraw(*_):
        g = None if group.value == "channel" else int(group.value)
        spec = QuantSpec(bits=bits.value, sym=sym.value, granularity="channel" if g is None else "group", group_size=g)
        wq = fake_quantize_spec(w, spec)
        with out:
            out.clear_output(wait=True)
            fig, axes = plt.subplots(1, 2, figsize=(10, 3.2))
            err = (x @ (wq - w).T).pow(2).mean(0).sqrt() / (x @ w.T).pow(2).mean().sqrt()
            axes[0].plot(err.numpy(), lw=0.8)
            axes[0].set(title=f"per-output-channel error, total {relative_error_on_inputs(w, wq, x):.2e}",
                        xlabel="output channel", ylabel="relative RMS error")
            axes[1].hist((wq - w).flatten().numpy(), bins=80, color="tab:blue")
            axes[1].set(title="weight rounding error", xlabel="w_hat - w")
            plt.tight_layout()
            plt.show()
            if extra is not None:
                print(extra(bits.value, g))

    for control in (bits, group, sym):
        control.observe(redraw, names="value")
    redraw()
    display(W.VBox([W.HBox([bits, group, sym]), out]))
    return redraw


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
    import copy

    from ..eval import category_summary, evaluate
    from . import quantize

    recipe = f"rtn:w{bits}a16" + ("" if group is None else f"g{group}")
    qmodel, _ = quantize(copy.deepcopy(model), recipe)
    summary = category_summary(evaluate(qmodel, tok, tasks=list(tasks), limit=limit))
    return f"{recipe}: " + ", ".join(f"{r.category} {r.value:.3f} ± {r.stderr:.3f}" for r in summary.itertuples())
