"""Notebook 08 (DuQuant): one layer through smoothing, rotation, zigzag permutation and a second rotation."""
from __future__ import annotations

import torch

from ..quant.duquant import calibrate_transform, greedy_rotation
from .n06_smoothquant import smooth_view


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


def block_maxima(x: torch.Tensor, block_size: int) -> torch.Tensor:
    """max |x| of each block of `block_size` consecutive channels (over all tokens)."""
    return x.abs().amax(0).reshape(-1, block_size).amax(1)


def greedy_peaks(x: torch.Tensor, block_size: int, steps: int, index: str = "channel", seed: int = 0) -> list:
    """Peak (max − min) of the [−1, b] view after 0, 1, ..., `steps` greedy steps (DuQuant keeps the best prefix)."""
    return greedy_rotation(x, block_size, steps, index, seed, return_peaks=True)[1]
