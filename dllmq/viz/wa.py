"""Plots and widgets for notebooks 06-08 (SmoothQuant, QuaRot, DuQuant): channel ranges, α sweeps, token
profiles, DuQuant's stages, TinyBench bars. Figures are matplotlib Figures (no pyplot state); widgets wire
core ipywidgets to the compute functions of dllmq.lab."""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure

from ..lab.layers import layer_errors, per_token_error
from ..lab.n06_smoothquant import smooth_view
from ..lab.n07_quarot import rotate_view
from ..lab.n08_duquant import block_maxima, duquant_stages


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
