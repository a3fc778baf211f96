"""Pictures of a denoising run: the canvas step by step, and heatmaps of when / how confidently each
answer position was unmasked. Used by notebook 01 and `dllmq demo`."""
from __future__ import annotations

from typing import Optional

import matplotlib.pyplot as plt
import numpy as np

from ..decoding import Generation

MASK_GLYPH = "_"
EOS_GLYPH = "·"  # end-of-sequence padding


def canvas_text(ids, tok, mask_id: int) -> str:
    """One row of answer ids as a single line of text: masks drawn as `_`, EOS padding as `·`, newlines as `⏎`."""
    eos = tok.eos_token_id
    pieces = [MASK_GLYPH if i == mask_id else EOS_GLYPH if i == eos else tok.decode([i], skip_special_tokens=False)
              for i in ids.tolist()]
    return "".join(pieces).replace("\n", "⏎")


def trace_lines(gen: Generation, tok, mask_id: int, row: int = 0) -> list:
    """The answer canvas before every step and after the last one, as strings (for printing)."""
    if gen.trace is None:
        raise ValueError("trace=False: run generate(..., trace=True) to record the steps")
    lines = [f"step {t.step:>3} (block {t.block}): {canvas_text(t.canvas[row], tok, mask_id)}" for t in gen.trace]
    lines.append(f"final             : {canvas_text(gen.ids[row], tok, mask_id)}")
    return lines


def plot_unmask_heatmap(gen: Generation, tok=None, row: int = 0, ax: Optional[plt.Axes] = None, title: str = ""):
    """Two stacked strips over the answer positions: the step at which each position was committed,
    and the confidence it had then. Returns the Figure."""
    order = gen.unmask_order()[row].numpy()
    conf = gen.confidence_map()[row].numpy()
    conf = np.where(np.isfinite(conf), conf, np.nan)
    if ax is None:
        fig, axes = plt.subplots(2, 1, figsize=(max(6, len(order) * 0.22), 2.6), sharex=True)
    else:
        fig, axes = ax.figure, [ax, ax.twinx()]
    im0 = axes[0].imshow(order[None], aspect="auto", cmap="viridis")
    axes[0].set_yticks([])
    axes[0].set_ylabel("step", rotation=0, ha="right")
    fig.colorbar(im0, ax=axes[0], pad=0.01)
    im1 = axes[1].imshow(conf[None], aspect="auto", cmap="magma", vmin=0, vmax=1)
    axes[1].set_yticks([])
    axes[1].set_ylabel("confidence", rotation=0, ha="right")
    fig.colorbar(im1, ax=axes[1], pad=0.01)
    if tok is not None and len(order) <= 96:
        labels = [tok.decode([i]) for i in gen.ids[row].tolist()]
        axes[1].set_xticks(range(len(labels)))
        axes[1].set_xticklabels([repr(s)[1:-1] or "·" for s in labels], fontsize=7)
    axes[1].set_xlabel("answer position")
    axes[0].set_title(title or f"{gen.settings.get('remasking')} remasking, block {gen.settings.get('block_length')}, "
                               f"{gen.settings.get('steps')} steps")
    fig.tight_layout()
    return fig


def plot_commits_per_step(gen: Generation, row: int = 0, ax: Optional[plt.Axes] = None):
    """Bar chart: how many tokens each step committed (the per-step quota made visible)."""
    counts = [len(t.positions[row]) for t in gen.trace]
    if ax is None:
        fig, ax = plt.subplots(figsize=(6, 2.2))
    ax.bar(range(len(counts)), counts, color="tab:blue")
    ax.set_xlabel("step")
    ax.set_ylabel("tokens unmasked")
    ax.figure.tight_layout()
    return ax.figure
