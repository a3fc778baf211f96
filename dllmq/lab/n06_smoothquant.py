"""Notebook 06 (SmoothQuant): what smoothing at strength α does to one layer's activations and weights."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
import torch

from ..quant.smoothquant import smoothing_scales
from .layers import layer_errors


def smooth_view(x: torch.Tensor, w: torch.Tensor, alpha: float) -> tuple:
    """(X / s, W diag(s), s) with SmoothQuant's s_j = max|X_j|^α / max|W_j|^(1−α)."""
    s = smoothing_scales(x.abs().amax(0), [w], alpha)
    return x / s, w * s, s


def alpha_sweep(x: torch.Tensor, w: torch.Tensor, alphas: Sequence[float] = tuple(np.linspace(0, 1, 11)),
                w_bits: int = 4, a_bits: int = 4) -> pd.DataFrame:
    """layer_errors after smoothing at each α (α = 0: nothing migrates; α = 1: everything into W)."""
    rows = []
    for a in alphas:
        xs, ws, _ = smooth_view(x, w, float(a))
        rows.append({"alpha": round(float(a), 3), **layer_errors(xs, ws, w_bits, a_bits)})
    return pd.DataFrame(rows)
