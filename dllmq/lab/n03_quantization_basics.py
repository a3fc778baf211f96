"""Notebook 03 (quantization basics): the grid a quantizer fits, and RTN's error by granularity, bits,
group size, clipping and planted outliers, on real layers (`dllmq.lab.layers.layer_inputs`)."""
from __future__ import annotations

from typing import Optional, Sequence

import pandas as pd
import torch

from ..quant.quantizer import QuantSpec, compute_qparams, fake_quantize
from ..quant.report import relative_error_on_inputs


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
                         "rel_error": relative_error_on_inputs(w, fake_quantize(w, spec), x)})
    return pd.DataFrame(rows)


def clip_curve(w: torch.Tensor, x: torch.Tensor, bits: int = 3, group_size: Optional[int] = None,
               ratios: Sequence[float] = tuple(1 - i / 20 for i in range(11))) -> pd.DataFrame:
    """Output error vs a fixed clip ratio, plus the MSE-grid choice (ratio 'mse')."""
    gran = "channel" if group_size is None else "group"
    rows = []
    for r in list(ratios) + ["mse"]:
        spec = QuantSpec(bits=bits, granularity=gran, group_size=group_size, clip_ratio=r)
        rows.append({"clip": r, "rel_error": relative_error_on_inputs(w, fake_quantize(w, spec), x)})
    return pd.DataFrame(rows)
