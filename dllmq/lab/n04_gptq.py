"""Notebook 04 (GPTQ): GPTQ against RTN column by column, and its options, on one real layer."""
from __future__ import annotations

import pandas as pd
import torch

from ..quant.gptq import gptq_quantize
from ..quant.quantizer import QuantSpec, fake_quantize
from ..quant.report import relative_output_error


def gptq_column_curve(w: torch.Tensor, H: torch.Tensor, spec: QuantSpec, points: int = 16,
                      **opts) -> pd.DataFrame:
    """Output error after quantizing the first k columns: RTN (rest left FP) vs GPTQ (rest updated by the
    error feedback, not yet quantized). GPTQ's curve stays low because later columns absorb the error."""
    n = w.shape[1]
    ks = sorted(set(int(round(n * i / points)) for i in range(points + 1)))
    rtn = fake_quantize(w, spec)
    rows = []
    for k in ks:
        mixed = torch.cat([rtn[:, :k], w[:, k:]], dim=1)
        g = gptq_quantize(w, H, spec, stop_after=k, **opts).weight
        rows.append({"columns": k, "rtn": relative_output_error(w, mixed, H),
                     "gptq": relative_output_error(w, g, H)})
    return pd.DataFrame(rows)


def gptq_options_table(w: torch.Tensor, H: torch.Tensor, spec: QuantSpec) -> pd.DataFrame:
    """RTN vs GPTQ variants (act-order, static groups, damping) on one layer."""
    rows = [{"variant": "RTN", "rel_error": relative_output_error(w, fake_quantize(w, spec), H)}]
    for name, kw in [("GPTQ", {}), ("GPTQ act-order", {"act_order": True}),
                     ("GPTQ act-order + static groups", {"act_order": True, "static_groups": True}),
                     ("GPTQ damp 0.1", {"damp": 0.1}), ("GPTQ damp 1.0", {"damp": 1.0})]:
        res = gptq_quantize(w, H, spec, **kw)
        rows.append({"variant": name, "rel_error": relative_output_error(w, res.weight, H)})
    df = pd.DataFrame(rows)
    df["vs_rtn"] = df["rel_error"] / df["rel_error"].iloc[0]
    return df
