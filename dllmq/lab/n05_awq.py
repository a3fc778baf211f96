"""Notebook 05 (AWQ): salient channels and AWQ's scale search on one real layer."""
from __future__ import annotations

from typing import Optional

import pandas as pd
import torch

from ..quant.quantizer import QuantSpec, fake_quantize
from ..quant.report import relative_error_on_inputs


def salient_channels(x: torch.Tensor, frac: float = 0.01) -> torch.Tensor:
    """Indices of the top `frac` input channels by mean |x| (AWQ's activation-based salience)."""
    k = max(1, int(round(frac * x.shape[1])))
    return x.abs().mean(0).topk(k).indices


def salient_experiment(w: torch.Tensor, x: torch.Tensor, bits: int = 3, group_size: Optional[int] = None,
                       frac: float = 0.01, scale: float = 2.0, seed: int = 0) -> pd.DataFrame:
    """AWQ's motivating experiment: keep 1% of the input channels in FP (salient by activation, by weight
    norm, or random), or instead multiply the salient columns by `scale` before quantizing."""
    spec = QuantSpec(bits=bits, granularity="channel" if group_size is None else "group", group_size=group_size)
    rtn = fake_quantize(w, spec)
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
    scaled = fake_quantize(w * s, spec) / s
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
        wq = fake_quantize(w * s, spec) / s
        rows.append({"ratio": r, "mse": float((x @ wq.T - y).pow(2).mean()),
                     "rel_error": relative_error_on_inputs(w, wq, x)})
    return pd.DataFrame(rows)
