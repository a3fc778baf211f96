"""Figures of results: the demo, the reproduction, the findings, the studies, the MC noise (matplotlib;
each returns a Figure).

Every function takes a results-store DataFrame (`ResultStore(...).to_frame()`: model, recipe, task,
metric, variant, value, stderr, n, category) or the output of `compare`, so a figure can be redrawn
from a store at any time without rerunning anything.
"""
from __future__ import annotations

from typing import Optional

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ..paper.compare import calibration_kind, primary_metric, recipe_label, strip_calibration
from ..sweeps.sweep import parse_variant

BAND_COLORS = (("negligible", 0.0, 1.0, "#dff0d8"), ("moderate", 1.0, 4.0, "#fcf8e3"),
               ("significant", 4.0, np.inf, "#f2dede"))


def _with_options(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    options = frame["variant"].fillna("").map(parse_variant)
    for key in sorted({k for o in options for k in o}):
        frame[key] = options.map(lambda o, k=key: o.get(k))
    frame["label"] = frame["recipe"].map(recipe_label)
    return frame


def _accuracy(frame: pd.DataFrame, metric: Optional[str]) -> pd.DataFrame:
    """Rows of one metric; metric=None keeps each task's headline metric (acc, exact_match, pass@1...)."""
    if metric is None:
        keep = frame.groupby("task")["metric"].agg(primary_metric)
        frame = frame[frame["metric"] == frame["task"].map(keep)]
    else:
        frame = frame[frame["metric"] == metric]
    if frame.empty:
        raise ValueError(f"no rows with metric={metric!r}; metrics present: {sorted(set(frame['metric']))}")
    return frame


def shade_bands(ax, max_drop: float) -> None:
    """Background bands of the paper's scale on a 'drop (%)' axis (positive = worse)."""
    for name, lo, hi, color in BAND_COLORS:
        if lo < max_drop:
            ax.axhspan(lo, min(hi, max_drop * 1.05 + 1), color=color, zorder=0, label=f"{name}")


def plot_steps_x_bits(frame: pd.DataFrame, metric: Optional[str] = None, ax=None):
    """Generation accuracy vs diffusion steps (fixed gen length), one line per recipe."""
    data = _with_options(_accuracy(frame, metric))
    if "steps" not in data:
        raise ValueError("the frame has no 'steps' option in its variants (run the steps_x_bits preset)")
    mean = data.groupby(["label", "steps"])["value"].mean().unstack("label")
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(5.5, 3.6))
    for label in mean.columns:
        ax.plot(mean.index, mean[label] * 100, marker="o", label=label)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("diffusion steps (gen length fixed)")
    ax.set_ylabel("accuracy (%)")
    ax.set_title("Fewer steps x fewer bits")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_option_bars(frame: pd.DataFrame, option: str, metric: Optional[str] = None, ax=None,
                     title: Optional[str] = None):
    """Accuracy per recipe, one bar per value of a variant option (e.g. remasking)."""
    data = _with_options(_accuracy(frame, metric))
    if option not in data:
        raise ValueError(f"the frame has no {option!r} option in its variants")
    mean = data.groupby(["label", option])["value"].mean().unstack(option)
    order = sorted(mean.index, key=lambda s: (s != "FP", s))
    mean = mean.reindex(order)
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(max(5, 1.2 * len(mean)), 3.6))
    width = 0.8 / max(1, len(mean.columns))
    x = np.arange(len(mean))
    for i, value in enumerate(mean.columns):
        ax.bar(x + (i - (len(mean.columns) - 1) / 2) * width, mean[value] * 100, width, label=f"{option}={value}")
    ax.set_xticks(x, mean.index, fontsize=8, rotation=20)
    ax.set_ylabel("accuracy (%)")
    ax.set_title(title or f"accuracy by {option}")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_remasking_x_bits(frame: pd.DataFrame, metric: Optional[str] = None, ax=None):
    return plot_option_bars(frame, "remasking", metric, ax, "Remasking strategy x bit-width")


def plot_calibration(frame: pd.DataFrame, metric: Optional[str] = None, ax=None):
    """Accuracy of each method with clean vs mask-aware calibration (the recipe's mask= option)."""
    data = _accuracy(frame, metric).copy()
    data["calibration"] = data["recipe"].map(calibration_kind)
    data["variant"] = "calibration=" + data["calibration"]
    data["recipe"] = data["recipe"].map(strip_calibration)
    return plot_option_bars(data, "calibration", None, ax, "Clean vs mask-aware calibration")


def plot_lowbit(frame: pd.DataFrame, axes=None):
    """Weight memory (MiB) and forward latency (ms) per backend: real low-bit storage vs fake quantization."""
    data = frame[frame["task"] == "memory"].copy()
    if data.empty:
        raise ValueError("no 'memory' rows (run the lowbit preset)")
    data["backend"] = data["variant"].map(lambda v: parse_variant(v).get("backend", "fake"))
    data["label"] = data["recipe"].map(recipe_label) + "\n" + data["backend"]
    metrics = [m for m in ("weight_mib", "forward_ms") if m in set(data["metric"])]
    fig, axes = (axes[0].figure, axes) if axes is not None else plt.subplots(1, len(metrics),
                                                                             figsize=(5 * len(metrics), 3.6))
    axes = np.atleast_1d(axes)
    for ax, metric in zip(axes, metrics):
        part = data[data["metric"] == metric].set_index("label")["value"]
        ax.bar(range(len(part)), part.to_numpy(), color="#2c7fb8")
        ax.set_xticks(range(len(part)), part.index, fontsize=7)
        ax.set_ylabel({"weight_mib": "linear-layer weights (MiB)", "forward_ms": "forward latency (ms)"}[metric])
    fig.suptitle("Real low-bit storage vs fake quantization")
    fig.tight_layout()
    return fig


def plot_fidelity(frame: pd.DataFrame, axes=None):
    """KL(FP || quantized) and top-1 agreement at masked positions, per recipe."""
    data = frame[frame["task"] == "fidelity"].copy()
    if data.empty:
        raise ValueError("no 'fidelity' rows (run the dream_wa preset)")
    data["label"] = data["recipe"].map(recipe_label)
    fig, axes = (axes[0].figure, axes) if axes is not None else plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, metric, ylabel in zip(axes, ("kl", "top1_agree"), ("KL(FP || Q) (nats)", "top-1 agreement")):
        part = data[data["metric"] == metric].groupby("label")["value"].mean()
        ax.bar(range(len(part)), part.to_numpy(), color="#2c7fb8")
        ax.set_xticks(range(len(part)), part.index, fontsize=7, rotation=20)
        ax.set_ylabel(ylabel)
    fig.suptitle(f"W-A quantization fidelity ({', '.join(sorted(set(data['model'])))})")
    fig.tight_layout()
    return fig


def plot_accuracy_by_category(frame: pd.DataFrame, metric: Optional[str] = None, ax=None, title: str = ""):
    """Mean accuracy per category for each recipe, FP first (the demo's figure)."""
    data = _with_options(_accuracy(frame, metric))
    data["category"] = data["category"].fillna(data["task"])
    mean = data.groupby(["label", "category"])["value"].mean().unstack("category")
    order = sorted(mean.index, key=lambda s: (s != "FP", s.split()[-2] if " " in s else "", s))
    mean = mean.reindex(order)
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(max(6, 0.7 * len(mean)), 3.8))
    width = 0.8 / max(1, len(mean.columns))
    x = np.arange(len(mean))
    for i, cat in enumerate(mean.columns):
        ax.bar(x + (i - (len(mean.columns) - 1) / 2) * width, mean[cat] * 100, width, label=cat)
    if "FP" in mean.index:
        for i, cat in enumerate(mean.columns):
            ax.axhline(mean.loc["FP", cat] * 100, color=f"C{i}", lw=0.8, ls="--")
    ax.set_xticks(x, mean.index, fontsize=7, rotation=35, ha="right")
    ax.set_ylabel("accuracy (%)")
    ax.set_title(title or "accuracy per category (dashed: FP)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_demo_drops(table: pd.DataFrame, paper_model: str = "LLaDA-8B-Instruct"):
    """Heatmaps of the drop vs FP (%) per category: ours (tiny model) beside the paper's for the same
    method and bit-width (blank where the paper has no row, e.g. RTN)."""
    from ..paper.tables import category_drops

    rows = table[table["method"] != "FP"]
    cats = [c for c in ("general", "math", "code") if c in table]
    fp = table[table["method"] == "FP"].iloc[0]
    ours = np.array([[(r[c] / fp[c] - 1) * 100 if fp[c] > 0 else np.nan for c in cats] for _, r in rows.iterrows()])
    theirs = np.array([[category_drops(r["method"], r["setting"], paper_model).get(c, np.nan) for c in cats]
                       for _, r in rows.iterrows()])
    labels = [f"{m} {s}" for m, s in zip(rows["method"], rows["setting"])]
    fig, axes = plt.subplots(1, 2, figsize=(9, 0.35 * len(labels) + 1.6), sharey=True)
    limit = max(5.0, float(np.nanmax(np.abs(np.concatenate([ours.ravel(), theirs.ravel(), [5.0]])))))
    for ax, values, title in zip(axes, (ours, theirs), ("ours (tiny model, TinyBench)", f"paper ({paper_model})")):
        image = ax.imshow(values, cmap="RdBu", vmin=-limit, vmax=limit, aspect="auto")
        for (i, j), v in np.ndenumerate(values):
            if not np.isnan(v):
                ax.text(j, i, f"{v:+.1f}", ha="center", va="center", fontsize=7)
        ax.set_xticks(range(len(cats)), cats)
        ax.set_title(title, fontsize=9)
    axes[0].set_yticks(range(len(labels)), labels, fontsize=7)
    fig.colorbar(image, ax=axes, label="drop vs FP (%)", shrink=0.8)
    return fig


def plot_steps_curve(curve: pd.DataFrame, ax=None):
    """Accuracy (left axis) and wall time (right axis) vs diffusion steps at a fixed gen length."""
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(5.5, 3.4))
    ax.plot(curve["steps"], curve["accuracy"] * 100, marker="o", color="#2c7fb8", label="accuracy")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("diffusion steps (gen length fixed)")
    ax.set_ylabel("accuracy (%)", color="#2c7fb8")
    twin = ax.twinx()
    twin.plot(curve["steps"], curve["seconds"], marker="s", color="#e34a33", label="seconds")
    twin.set_ylabel("wall time (s)", color="#e34a33")
    ax.set_title("more steps: fewer tokens per step, better answers, slower")
    fig.tight_layout()
    return fig


def plot_finding(frame: pd.DataFrame, key: str, paper_model: str = "LLaDA-8B-Instruct"):
    """Grouped bars of the degradation (%) per (method, setting) and category: paper vs tiny model."""
    from ..paper.findings import get_finding, paper_evidence, tiny_evidence

    finding = get_finding(key)
    theirs = paper_evidence(key)
    theirs = theirs[theirs["model"] == (paper_model if key != "F7" else "Dream-7B")]
    ours = tiny_evidence(frame, key) if frame is not None else pd.DataFrame(columns=["method", "setting", "category",
                                                                                     "drop"])
    cats = [c for c in finding.categories if c in set(theirs["category"]) | set(ours["category"])]
    fig, axes = plt.subplots(1, len(cats), figsize=(4.2 * len(cats), 3.4), squeeze=False)
    for ax, cat in zip(axes[0], cats):
        labels = [f"{m}\n{s}" for m, s in finding.rows]
        x = np.arange(len(labels))
        for offset, data, name, color in ((-0.2, theirs, f"paper ({paper_model if key != 'F7' else 'Dream-7B'})",
                                           "#7f8c8d"), (0.2, ours, "tiny model", "#2c7fb8")):
            part = data[data["category"] == cat].set_index(["method", "setting"])["drop"]
            values = [-part.get((m, s), np.nan) for m, s in finding.rows]
            ax.bar(x + offset, np.nan_to_num(values), 0.4, label=name, color=color)
        ax.axhline(1, color="green", lw=0.7, ls=":")
        ax.axhline(4, color="red", lw=0.7, ls=":")
        ax.set_xticks(x, labels, fontsize=7)
        ax.set_title(cat)
        ax.set_ylabel("degradation vs FP (%)")
    axes[0][0].legend(fontsize=7)
    fig.suptitle(f"{key}: {finding.claim}", fontsize=9)
    fig.tight_layout()
    return fig


def plot_mc_spread(frame: pd.DataFrame, ax=None):
    """Std of the estimate across seeds vs n (log-log), with the 1/sqrt(n) slope for reference."""
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(5.5, 3.6))
    multi = frame[frame["tokens"] > 1]
    for pair, part in multi.groupby("pair"):
        ax.plot(part["n_samples"], part["std"], marker="o", alpha=0.8, label=f"pair {pair} ({part['tokens'].iloc[0]} tok)")
    if not multi.empty:
        n = np.array(sorted(set(multi["n_samples"])))
        start = multi[multi["n_samples"] == n[0]]["std"].mean()
        ax.plot(n, start / np.sqrt(n / n[0]), "k--", lw=1, label=r"$\propto 1/\sqrt{n}$")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("Monte-Carlo samples n")
    ax.set_ylabel("std of log-likelihood estimate (nats)")
    ax.set_title("MC likelihood: noise vs samples")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def _dream_figure(frame: pd.DataFrame):
    if (frame["task"] == "fidelity").any():
        return plot_fidelity(frame)
    return plot_accuracy_by_category(frame, metric=None, title="Dream W-A: accuracy per task")


STUDY_FIGURES = {"steps_x_bits": plot_steps_x_bits, "remasking_x_bits": plot_remasking_x_bits,
                 "calibration": plot_calibration, "lowbit": plot_lowbit, "dream_wa": _dream_figure}


def plot_study(name: str, frame: pd.DataFrame):
    """The figure of study `name` (dllmq.sweeps.studies) from its store records."""
    if name not in STUDY_FIGURES:
        raise ValueError(f"study={name!r} is unknown; allowed: {sorted(STUDY_FIGURES)}")
    return STUDY_FIGURES[name](frame)
