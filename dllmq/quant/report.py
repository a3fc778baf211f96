"""QuantReport: what a quantization run did, layer by layer (error, time, notes), printable as a table.

Per-layer error is the *relative output error on calibration inputs*

    err = ||X W_hat^T - X W^T||^2 / ||X W^T||^2 = tr(dW H dW^T) / tr(W H W^T),   H = X^T X

computed from the layer's input second moment H (or the cached inputs). Without calibration data
the report falls back to the relative weight error ||dW||^2 / ||W||^2 (basis "weight").
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import torch


@torch.no_grad()
def relative_output_error(w: torch.Tensor, w_hat: torch.Tensor, H: torch.Tensor) -> float:
    """tr(dW H dW^T) / tr(W H W^T) for W [out, in] and the input second moment H [in, in] (float64 sums)."""
    w = w.float().to(H.device)
    dw = w_hat.float().to(H.device) - w
    num = ((dw @ H) * dw).sum(dtype=torch.float64)
    den = ((w @ H) * w).sum(dtype=torch.float64)
    return float(num / den) if den > 0 else float("nan")


@torch.no_grad()
def relative_error_on_inputs(w: torch.Tensor, w_hat: torch.Tensor, x: torch.Tensor) -> float:
    """||x dW^T||^2 / ||x W^T||^2 on explicit inputs x [tokens, in]."""
    x = x.float()
    y = x @ w.float().to(x.device).T
    dy = x @ (w_hat.float().to(x.device) - w.float().to(x.device)).T
    den = y.pow(2).sum(dtype=torch.float64)
    return float(dy.pow(2).sum(dtype=torch.float64) / den) if den > 0 else float("nan")


@torch.no_grad()
def relative_weight_error(w: torch.Tensor, w_hat: torch.Tensor) -> float:
    """||dW||^2 / ||W||^2 (no calibration data needed)."""
    den = w.float().pow(2).sum(dtype=torch.float64)
    return float((w_hat.float() - w.float()).pow(2).sum(dtype=torch.float64) / den) if den > 0 else float("nan")


def relative_l2_error(ref: torch.Tensor, out: torch.Tensor) -> float:
    """‖out − ref‖₂ / ‖ref‖₂ in float64 (not squared): how far a rewrite or a quantized output moves a tensor.

    The per-layer errors above are squared ratios (the GPTQ objective's scale); this one is the plain norm
    ratio the invariance tests and notebooks report (an exact rewrite gives ~1e-7)."""
    ref, out = ref.detach().double(), out.detach().double()
    return float((out - ref).norm() / ref.norm().clamp_min(1e-300))


@dataclass
class LayerRecord:
    block: int
    role: str
    name: str
    error: float
    basis: str  # "output" (calibration inputs) or "weight"
    time_s: float
    w_bits: int
    notes: str = ""


@dataclass
class QuantReport:
    """Per-layer and per-block results of one `quantize` call."""

    recipe: str
    method: str
    layers: list = field(default_factory=list)
    blocks: list = field(default_factory=list)  # dicts: block, output_error, time_s
    events: list = field(default_factory=list)  # human-readable notes (damping raised, scaling skipped, ...)
    total_time_s: float = 0.0
    extra: dict = field(default_factory=dict)

    def add_layer(self, block: int, role: str, name: str, error: float, time_s: float, w_bits: int,
                  basis: str = "output", notes: str = "") -> None:
        self.layers.append(LayerRecord(block, role, name, float(error), basis, float(time_s), w_bits, notes))

    def add_block(self, block: int, output_error: Optional[float], time_s: float) -> None:
        self.blocks.append({"block": block, "output_error": output_error, "time_s": float(time_s)})

    def add_event(self, message: str) -> None:
        self.events.append(message)

    def error(self, block: int, role: str) -> float:
        for rec in self.layers:
            if rec.block == block and rec.role == role:
                return rec.error
        raise KeyError(f"no layer block={block} role={role!r} in the report")

    def mean_error(self) -> float:
        errs = [r.error for r in self.layers if r.error == r.error]
        return sum(errs) / len(errs) if errs else float("nan")

    def to_frame(self):
        """pandas DataFrame, one row per quantized layer."""
        import pandas as pd
        return pd.DataFrame([r.__dict__ for r in self.layers])

    def block_frame(self):
        import pandas as pd
        return pd.DataFrame(self.blocks)

    def table(self, max_rows: int = 60) -> str:
        lines = [f"{'block':>5} {'role':<5} {'bits':>4} {'rel.err':>10} {'basis':<6} {'time(s)':>8}  notes"]
        for r in self.layers[:max_rows]:
            lines.append(f"{r.block:>5} {r.role:<5} {r.w_bits:>4} {r.error:>10.3e} {r.basis:<6} {r.time_s:>8.3f}  {r.notes}")
        if len(self.layers) > max_rows:
            lines.append(f"... {len(self.layers) - max_rows} more layers")
        return "\n".join(lines)

    def __str__(self) -> str:
        head = (f"QuantReport {self.recipe}: {len(self.layers)} layers, mean rel. error {self.mean_error():.3e}, "
                f"{self.total_time_s:.1f} s")
        parts = [head, self.table()]
        if self.blocks and any(b["output_error"] is not None for b in self.blocks):
            parts.append("block output rel. error: " + ", ".join(
                f"{b['block']}:{b['output_error']:.2e}" for b in self.blocks if b["output_error"] is not None))
        if self.events:
            parts.append("events:\n  " + "\n  ".join(self.events))
        return "\n".join(parts)

    def _repr_html_(self):  # notebooks show the DataFrame
        try:
            return f"<p>{self.recipe}: mean rel. error {self.mean_error():.3e}, {self.total_time_s:.1f} s</p>" + \
                self.to_frame()._repr_html_()
        except Exception:
            return None
