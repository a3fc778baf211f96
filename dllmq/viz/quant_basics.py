"""Plots and a widget for notebooks 03-05 (uniform quantization, GPTQ, AWQ); the numbers come from dllmq.lab."""
from __future__ import annotations

from typing import Sequence

import pandas as pd
import torch

from ..lab.n03_quantization_basics import grid_levels
from ..quant.quantizer import QuantSpec, fake_quantize
from ..quant.report import relative_error_on_inputs


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
        wq = fake_quantize(w, spec)
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
