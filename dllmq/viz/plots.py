"""Activation-outlier plots (matplotlib). Every function returns a `matplotlib.figure.Figure` built without
pyplot (no global state, safe under the Agg backend, displayed once by Jupyter); nothing calls show().

    plot_surface            paper-style 3D |x| over (token, channel) of one layer's input (max-pooled)
    plot_paper_panels       a row of such surfaces, "Massive" tags as in the paper's Figures 1, 2, B1, B2
    plot_depth              a metric (absmax, kurtosis, 4-bit error...) across depth, one line per input
    plot_channel_profile    per-channel mean|x| and absmax of one input, normal-outlier channels marked
    plot_magnitude_hist     distribution of |x| and of per-token absmax of one input
    plot_compare            dLLM vs AR: depth profiles and how many tokens carry large values
    plot_mask_ratio         statistics vs the share of [MASK] tokens in the input
    plot_steps              statistics across the steps of a denoising run
    plot_token_quant_error  per-token 4-bit error vs token absmax (the error explodes on massive tokens)
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure

ROLE_LABELS = {"q": "q/k/v input", "o": "o input", "gate": "gate/up input", "down": "down input",
               "k": "q/k/v input", "v": "q/k/v input", "up": "gate/up input"}
METRICS = ("absmax", "median_abs", "p99_abs", "absmax_over_median", "max_channel_mean", "kurtosis",
           "q8_rel_mse", "q4_rel_mse", "q4_rel_mse_top_token", "q4_bulk_rel_mse_top_token")
GROUP_COLORS = {"all": "0.3", "clean": "tab:blue", "masked": "tab:red", "prompt": "tab:green",
                "decoded": "tab:purple"}


def _abs_matrix(x, sample: int = 0) -> torch.Tensor:
    """|x| as (T, C) from a Capture (padding dropped), a (T, C) or an (n, T, C) tensor."""
    if hasattr(x, "tokens"):
        x = x.tokens(sample)
    elif x.dim() == 3:
        x = x[sample]
    if x.dim() != 2:
        raise ValueError(f"expected (tokens, channels) activations, got shape {tuple(x.shape)}")
    return x.detach().float().abs().cpu()


def max_pool_grid(a: torch.Tensor, max_rows: int, max_cols: int) -> tuple:
    """Downsample a (T, C) magnitude map by block maxima so single-token spikes survive.
    Returns (pooled (t, c), row starts, col starts)."""
    T, C = a.shape
    bt, bc = -(-T // max_rows), -(-C // max_cols)
    pooled = F.max_pool2d(a[None, None], (bt, bc), ceil_mode=True)[0, 0]  # (ceil(T/bt), ceil(C/bc))
    return pooled, np.arange(pooled.shape[0]) * bt, np.arange(pooled.shape[1]) * bc


def _surface(ax, a: torch.Tensor, title: str, max_tokens: int, max_channels: int, tag: Optional[str] = None):
    pooled, rows, cols = max_pool_grid(a, max_tokens, max_channels)
    X, Y = np.meshgrid(cols, rows)
    Z = pooled.numpy()
    ax.plot_surface(X, Y, Z, cmap="coolwarm", rcount=Z.shape[0], ccount=Z.shape[1], linewidth=0,
                    antialiased=False)
    ax.set_xlabel("channel")
    ax.set_ylabel("token")
    ax.set_zlabel("|x|")
    ax.set_title(title, fontsize=9)
    ax.view_init(elev=25, azim=-60)
    if tag:
        ax.text2D(0.03, 0.92, tag, transform=ax.transAxes, color="red", fontweight="bold")


def plot_surface(x, title: Optional[str] = None, sample: int = 0, max_tokens: int = 96, max_channels: int = 256,
                 tag: Optional[str] = None) -> Figure:
    """Paper-style 3D surface of |x| (token x channel) of one captured input (block maxima when large)."""
    fig = Figure(figsize=(6, 4.5))
    ax = fig.add_subplot(projection="3d")
    label = getattr(x, "label", "activations")
    _surface(ax, _abs_matrix(x, sample), title or label, max_tokens, max_channels, tag)
    fig.tight_layout()
    return fig


def plot_paper_panels(panels: Sequence[tuple], title: str = "", ncols: Optional[int] = None,
                      max_tokens: int = 64, max_channels: int = 192) -> Figure:
    """A grid of 3D surfaces; panels are (capture_or_tensor, panel_title, tag or None) tuples."""
    n = len(panels)
    ncols = ncols or n
    nrows = -(-n // ncols)
    fig = Figure(figsize=(3.6 * ncols, 3.2 * nrows))
    for i, (x, panel_title, tag) in enumerate(panels):
        ax = fig.add_subplot(nrows, ncols, i + 1, projection="3d")
        _surface(ax, _abs_matrix(x), panel_title, max_tokens, max_channels, tag)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def _check_metric(metric: str) -> None:
    if metric not in METRICS:
        raise ValueError(f"metric={metric!r} is unknown; allowed: {METRICS}")


def plot_depth(stats, metric: str = "absmax", roles: Optional[Sequence[str]] = None, logy: bool = True,
               ax=None, label: str = "") -> Figure:
    """`metric` of every collected input across depth, one line per input (q/k/v, o, gate/up, down)."""
    _check_metric(metric)
    frame = stats.frame()
    if roles is not None:
        frame = frame[frame["role"].isin(roles)]
    fig = Figure(figsize=(6.5, 3.8)) if ax is None else ax.figure
    ax = ax or fig.add_subplot()
    for role, part in frame.groupby("role", sort=False):
        ax.plot(part["layer"], part[metric], marker="o", ms=3, label=f"{label}{ROLE_LABELS.get(role, role)}")
    ax.set_xlabel("layer")
    ax.set_ylabel(metric)
    if logy:
        ax.set_yscale("log")
    ax.set_title(f"{metric} across depth ({stats.model_name.rstrip('/').split('/')[-1] or stats.family})", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def plot_channel_profile(stats, layer: int, role: str, thresholds=None) -> Figure:
    """Per-channel mean|x| and absmax of one input (log scale); normal-outlier channels marked in red."""
    from ..activations.classify import OutlierThresholds, normal_channels
    site = stats[layer, role]
    channels, _ = normal_channels(site, thresholds or OutlierThresholds())
    fig = Figure(figsize=(7, 3.5))
    ax = fig.add_subplot()
    idx = np.arange(site.channels)
    ax.plot(idx, site.ch_absmax.cpu().numpy(), lw=0.7, color="0.6", label="absmax over tokens")
    ax.plot(idx, site.ch_absmean.cpu().numpy(), lw=0.9, color="tab:blue", label="mean |x| over tokens")
    if channels:
        ax.scatter(channels, site.ch_absmean.cpu().numpy()[channels], color="red", zorder=3, s=14,
                   label="normal outlier channels")
    ax.set_yscale("log")
    ax.set_xlabel("channel")
    ax.set_ylabel("|x|")
    ax.set_title(f"L{layer} {ROLE_LABELS.get(role, role)}: per-channel magnitude", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _hist_xy(hist: torch.Tensor):
    from ..activations.histograms import mag_bin_edges
    edges = mag_bin_edges()
    keep = hist.cpu() > 0
    lo = edges[:-1][keep].numpy()
    return lo, hist.cpu()[keep].double().numpy()


def plot_magnitude_hist(stats, layer: int, role: str) -> Figure:
    """Distribution of |x| over all entries and of the per-token absmax of one input (log-log)."""
    from ..activations.histograms import magnitude_hist
    site = stats[layer, role]
    fig = Figure(figsize=(6.5, 3.5))
    ax = fig.add_subplot()
    for hist, label in ((site.abs_hist, "|x| (all entries)"), (magnitude_hist(site.tok_absmax_hist), "token absmax")):
        xs, counts = _hist_xy(hist)
        ax.step(xs, counts / counts.sum(), where="post", label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("magnitude")
    ax.set_ylabel("fraction")
    ax.set_title(f"L{layer} {ROLE_LABELS.get(role, role)}: magnitude distribution", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def token_absmax_ccdf(site) -> tuple:
    """(r, fraction of tokens whose absmax >= r x the site's median |x|) from the streaming histogram."""
    from ..activations.histograms import mag_bin_edges, magnitude_hist
    hist = magnitude_hist(site.tok_absmax_hist).cpu().double()
    edges = mag_bin_edges()[:-1]
    keep = hist > 0
    frac = 1 - (hist.cumsum(0) - hist) / hist.sum()  # tokens in this bin or above
    return (edges[keep] / site.median_abs).numpy(), frac[keep].numpy()


def plot_compare(dllm, ar, role: str = "down", metric: str = "absmax", labels: Sequence[str] = ("dLLM", "AR")) -> Figure:
    """dLLM vs AR side by side: `metric` of `role`'s input across relative depth, and the share of tokens
    whose absmax exceeds r x median |x| at each model's peak layer (massive outliers on more tokens?)."""
    _check_metric(metric)
    fig = Figure(figsize=(11, 3.8))
    ax1, ax2 = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    for stats, label in zip((dllm, ar), labels):
        frame = stats.frame()
        part = frame[frame["role"] == role]
        if part.empty:
            raise ValueError(f"role={role!r} was not collected for {label}; collected: {sorted(frame['role'].unique())}")
        depth = part["layer"] / max(stats.n_layers - 1, 1)
        ax1.plot(depth, part[metric], marker="o", ms=3, label=label)
        peak = int(part.loc[part["absmax"].idxmax(), "layer"])
        r, frac = token_absmax_ccdf(stats[peak, role])
        ax2.step(r, frac, where="post", label=f"{label} (L{peak})")
    ax1.set_xlabel("relative depth (layer / last layer)")
    ax1.set_ylabel(metric)
    ax1.set_yscale("log")
    ax1.set_title(f"{metric} of the {ROLE_LABELS.get(role, role)}", fontsize=10)
    ax2.set_xscale("log")
    ax2.set_yscale("log")
    ax2.set_xlabel("token absmax / median |x|")
    ax2.set_ylabel("fraction of tokens >= x")
    ax2.set_title("how many tokens carry large values (peak layer)", fontsize=10)
    for ax in (ax1, ax2):
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def _pick(frame, role: str, layer: Optional[int], metric: str):
    part = frame[frame["role"] == role]
    if part.empty:
        raise ValueError(f"role={role!r} was not collected; collected: {sorted(frame['role'].unique())}")
    if layer is not None:
        part = part[part["layer"] == layer]
        if part.empty:
            raise ValueError(f"layer={layer} was not collected; collected: {sorted(frame['layer'].unique())}")
    return part


def plot_mask_ratio(sweep: dict, role: str = "down", layer: Optional[int] = None, metric: str = "absmax") -> Figure:
    """Left: `metric` across depth for each mask ratio. Right: `metric` vs mask ratio for masked and clean
    positions at `layer` (None: the maximum over layers)."""
    from ..activations.views import views_frame
    _check_metric(metric)
    frame = views_frame(sweep, key="ratio")
    fig = Figure(figsize=(11, 3.8))
    ax1, ax2 = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    allf = _pick(frame[frame["group"] == "all"], role, None, metric)
    for ratio, part in allf.groupby("ratio"):
        ax1.plot(part["layer"], part[metric], marker="o", ms=3, label=f"{ratio:.0%} masked")
    ax1.set_xlabel("layer")
    ax1.set_title(f"{metric} of the {ROLE_LABELS.get(role, role)} by mask ratio", fontsize=10)
    for group, style in (("all", "--"), ("clean", "-"), ("masked", "-")):
        part = _pick(frame[frame["group"] == group], role, layer, metric)
        series = part.groupby("ratio")[metric].max()
        ax2.plot(series.index, series.values, style, marker="o", color=GROUP_COLORS[group], label=f"{group} positions")
    ax2.set_xlabel("mask ratio of the input")
    ax2.set_title(f"{metric} at {'layer ' + str(layer) if layer is not None else 'max over layers'}", fontsize=10)
    for ax in (ax1, ax2):
        ax.set_ylabel(metric)
        ax.set_yscale("log")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def plot_steps(step_stats: dict, role: str = "down", layer: Optional[int] = None, metric: str = "absmax") -> Figure:
    """`metric` across the denoising steps for prompt, still-masked and decoded positions."""
    from ..activations.views import views_frame
    _check_metric(metric)
    frame = views_frame(step_stats, key="step")
    fig = Figure(figsize=(6.5, 3.8))
    ax = fig.add_subplot()
    for group in ("prompt", "masked", "decoded"):
        part = frame[(frame["group"] == group) & (frame["role"] == role)]
        if layer is not None:
            part = part[part["layer"] == layer]
        if part.empty:
            continue
        series = part.groupby("step")[metric].max()
        ax.plot(series.index, series.values, marker="o", ms=3, color=GROUP_COLORS[group], label=f"{group} positions")
    ax.set_xlabel("denoising step")
    ax.set_ylabel(metric)
    ax.set_yscale("log")
    where = f"layer {layer}" if layer is not None else "max over layers"
    ax.set_title(f"{metric} of the {ROLE_LABELS.get(role, role)} during decoding ({where})", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def plot_token_quant_error(x, bits: int = 4, sample: int = 0, title: Optional[str] = None) -> Figure:
    """Per-token relative error of a `bits`-bit per-token quantizer vs the token's absmax: over the whole
    token and over its bulk (entries < 16x its mean |x|). On a massive token the bulk error goes to ~1."""
    from ..activations.token_quant import per_token_quant_error
    if hasattr(x, "tokens"):
        x = x.tokens(sample)
    elif x.dim() == 3:
        x = x[sample]
    x = x.float().cpu()
    absmax = x.abs().amax(-1).numpy()
    fig = Figure(figsize=(6.5, 3.8))
    ax = fig.add_subplot()
    ax.scatter(absmax, per_token_quant_error(x, bits).numpy(), s=10, label="whole token", alpha=0.7)
    ax.scatter(absmax, per_token_quant_error(x, bits, bulk=True).numpy(), s=10, marker="x",
               label="bulk of the token", color="tab:red")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("token absmax")
    ax.set_ylabel(f"relative MSE at {bits} bits")
    ax.set_title(title or f"per-token {bits}-bit quantization error", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def plot_explorer_view(cap, mask_id: Optional[int] = None, title: str = "") -> Figure:
    """The explorer's view: 3D |x| surface and per-token absmax (masked positions in red)."""
    a = _abs_matrix(cap)
    fig = Figure(figsize=(11, 4))
    ax1 = fig.add_subplot(1, 2, 1, projection="3d")
    _surface(ax1, a, title or cap.label, 64, 192)
    ax2 = fig.add_subplot(1, 2, 2)
    ids = cap.input_ids[0]
    if cap.attention_mask is not None:
        ids = ids[cap.attention_mask[0].bool()]
    masked = (ids == mask_id).numpy() if mask_id is not None else np.zeros(len(ids), bool)
    colors = np.where(masked, "tab:red", "tab:blue")
    ax2.bar(np.arange(a.shape[0]), a.amax(-1).numpy(), color=colors)
    ax2.set_yscale("log")
    ax2.set_xlabel("token (red: [MASK])")
    ax2.set_ylabel("token absmax")
    ax2.set_title("per-token absmax", fontsize=10)
    fig.tight_layout()
    return fig
