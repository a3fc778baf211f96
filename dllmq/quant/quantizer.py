"""Uniform integer quantization: the round-to-nearest (RTN) math every method in dllmq shares.

One quantizer is described by a `QuantSpec` (bits, symmetric or not, granularity, clipping) and
applied as *fake quantization*: quantize to integers, dequantize back to float, keep the float tensor.

Asymmetric (affine) min-max, the paper's Eq. 1 (arXiv 2508.14896, Sec. 2.1)::

    s = (max(X) - min(X)) / (2^b - 1)        z = -round(min(X) / s)
    Xq = clamp(round(X / s) + z, 0, 2^b - 1)  X_hat = s * (Xq - z)

Symmetric, two conventions found in the reference code (default: "signed"):

    "signed" (QuaRot, SmoothQuant, DuQuant): s = absmax / (2^(b-1) - 1),
             Xq = clamp(round(X / s), -2^(b-1), 2^(b-1) - 1), z = 0
    "gptq"   (IST-DASLab/gptq and AutoGPTQ sym=True): an unsigned grid centred on z = 2^(b-1),
             s = 2 * absmax / (2^b - 1), Xq = clamp(round(X / s) + z, 0, 2^b - 1)

Every convention is written as (scale, zero, qmin, qmax) with X_hat = scale * (clamp(round(X/scale) + zero,
qmin, qmax) - zero), so GPTQ, packing and the tests use one formula.

Granularity (one scale per ...):
    "tensor"   the whole tensor
    "channel"  output channel = row (dim 0) of an nn.Linear weight [out, in]
    "group"    contiguous block of `group_size` entries along the last dim (g128 = 128 input columns)
    "token"    vector along the last dim (activations: one scale per token of a [..., hidden] input)

Clipping: `clip_ratio` in (0, 1] multiplies min and max (QuaRot's 0.9, DuQuant's 0.8), or "mse" runs the
shrink-grid search of IST gptq / QuaRot --w_clip (p = 1, 0.99, ..., 0.21 minimising sum |Q(x) - x|^2.4).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union

import torch
import torch.nn as nn

GRANULARITIES = ("tensor", "channel", "group", "token")
SYM_CONVENTIONS = ("signed", "gptq")
DEFAULT_SYM_CONVENTION = "signed"
MIN_BITS, MAX_BITS = 2, 16
# MSE clip-search grid of IST-DASLab/gptq `Quantizer.configure(mse=True)` and QuaRot `--w_clip`.
MSE_NORM, MSE_GRID, MSE_MAXSHRINK = 2.4, 100, 0.8

ClipRatio = Union[float, str]


def check_bits(bits, name: str = "bits", allow_16: bool = False) -> int:
    """Validate a bit-width; 16 means "not quantized" where `allow_16` (activations, KV)."""
    if isinstance(bits, bool) or not isinstance(bits, int):
        raise TypeError(f"{name}={bits!r} must be an int in [{MIN_BITS}, {MAX_BITS}]")
    if not MIN_BITS <= bits <= MAX_BITS:
        extra = " (16 = no quantization)" if allow_16 else ""
        raise ValueError(f"{name}={bits} is out of range; allowed: integers {MIN_BITS}..{MAX_BITS}{extra}")
    return bits


def check_clip(clip_ratio, name: str = "clip_ratio") -> ClipRatio:
    """A clip ratio is a float in (0, 1] or the string "mse"."""
    if isinstance(clip_ratio, str):
        if clip_ratio != "mse":
            raise ValueError(f"{name}={clip_ratio!r} is invalid; allowed: a float in (0, 1] or 'mse'")
        return clip_ratio
    if isinstance(clip_ratio, bool) or not isinstance(clip_ratio, (int, float)):
        raise TypeError(f"{name}={clip_ratio!r} must be a float in (0, 1] or 'mse'")
    if not 0.0 < float(clip_ratio) <= 1.0:
        raise ValueError(f"{name}={clip_ratio} is out of range; allowed: a float in (0, 1] or 'mse'")
    return float(clip_ratio)


@dataclass(frozen=True)
class QuantSpec:
    """What one quantizer does. Validated on construction (a clear error names the bad field)."""

    bits: int
    sym: bool = False
    granularity: str = "channel"
    group_size: Optional[int] = None
    clip_ratio: ClipRatio = 1.0
    sym_convention: str = DEFAULT_SYM_CONVENTION
    include_zero: bool = False  # asymmetric range widened to contain 0 (IST gptq, QuaRot); paper Eq. 1: False

    def __post_init__(self):
        check_bits(self.bits, "bits")
        if self.granularity not in GRANULARITIES:
            raise ValueError(f"granularity={self.granularity!r} is unknown; allowed: {GRANULARITIES}")
        if self.granularity == "group":
            if isinstance(self.group_size, bool) or not isinstance(self.group_size, int) or self.group_size < 1:
                raise ValueError(f"group_size={self.group_size!r} must be a positive int for granularity='group'")
        elif self.group_size is not None:
            raise ValueError(f"group_size={self.group_size!r} is only allowed with granularity='group' "
                             f"(got granularity={self.granularity!r})")
        if self.sym_convention not in SYM_CONVENTIONS:
            raise ValueError(f"sym_convention={self.sym_convention!r} is unknown; allowed: {SYM_CONVENTIONS}")
        if not isinstance(self.sym, bool):
            raise TypeError(f"sym={self.sym!r} must be a bool")
        object.__setattr__(self, "clip_ratio", check_clip(self.clip_ratio))

    @property
    def qmin(self) -> int:
        return -(2 ** (self.bits - 1)) if (self.sym and self.sym_convention == "signed") else 0

    @property
    def qmax(self) -> int:
        return 2 ** (self.bits - 1) - 1 if (self.sym and self.sym_convention == "signed") else 2 ** self.bits - 1

    def describe(self) -> str:
        """Short human form, e.g. 'int4 asym g128' or 'int8 sym(signed) per-token clip0.9'."""
        kind = "asym" if not self.sym else f"sym({self.sym_convention})"
        gran = {"tensor": "per-tensor", "channel": "per-channel", "token": "per-token"}.get(
            self.granularity, f"g{self.group_size}")
        clip = "" if self.clip_ratio == 1.0 else f" clip={self.clip_ratio}"
        return f"int{self.bits} {kind} {gran}{clip}"

    def to_dict(self) -> dict:
        return dict(bits=self.bits, sym=self.sym, granularity=self.granularity, group_size=self.group_size,
                    clip_ratio=self.clip_ratio, sym_convention=self.sym_convention, include_zero=self.include_zero)


@dataclass
class QParams:
    """Quantization parameters for a 2-D view (rows, cols): scale and zero have shape (rows, 1)."""

    scale: torch.Tensor
    zero: torch.Tensor
    qmin: int
    qmax: int

    def fake_quantize(self, x: torch.Tensor) -> torch.Tensor:
        """Quantize then dequantize x with these parameters (float32 out; broadcasting)."""
        return dequantize(quantize(x, self.scale, self.zero, self.qmin, self.qmax), self.scale, self.zero)


# ----------------------------------------------------------------------------------------------
# Grouping: every granularity is a 2-D view with one scale per row.

def to_rows(x: torch.Tensor, granularity: str, group_size: Optional[int] = None) -> torch.Tensor:
    """Reshape x so each row shares one (scale, zero). Shapes:
    tensor (1, numel); channel (x.shape[0], -1); token (-1, x.shape[-1]); group (-1, group_size)."""
    if granularity == "tensor":
        return x.reshape(1, -1)
    if granularity == "channel":
        return x.reshape(x.shape[0], -1)
    if granularity == "token":
        return x.reshape(-1, x.shape[-1])
    if granularity == "group":
        if x.shape[-1] % group_size != 0:
            raise ValueError(f"group_size={group_size} must divide the last dimension {x.shape[-1]} "
                             f"(tensor shape {tuple(x.shape)})")
        return x.reshape(-1, group_size)
    raise ValueError(f"granularity={granularity!r} is unknown; allowed: {GRANULARITIES}")


# ----------------------------------------------------------------------------------------------
# Scale / zero, quantize, dequantize.

def compute_qparams(rows: torch.Tensor, spec: QuantSpec, clip_ratio: Union[float, torch.Tensor, None] = None,
                    extents: Optional[tuple] = None) -> QParams:
    """Min-max parameters per row of `rows` (float32). `clip_ratio` (float or (rows, 1)) overrides spec's;
    `extents` = (row minima, row maxima) when already known (the clip search reuses them per shrink factor)."""
    ratio = spec.clip_ratio if clip_ratio is None else clip_ratio
    if isinstance(ratio, str):
        raise ValueError("compute_qparams needs a numeric clip ratio; use find_qparams for clip_ratio='mse'")
    rows = rows.float()
    xmin, xmax = extents if extents is not None else (rows.amin(dim=1, keepdim=True), rows.amax(dim=1, keepdim=True))
    if spec.sym:
        absmax = torch.maximum(xmin.abs(), xmax.abs()) * ratio
        absmax = torch.where(absmax > 0, absmax, torch.ones_like(absmax))  # an all-zero row stays exact
        if spec.sym_convention == "signed":
            scale = absmax / spec.qmax
            zero = torch.zeros_like(scale)
        else:  # "gptq": unsigned grid, mid-point zero
            scale = 2 * absmax / spec.qmax
            zero = torch.full_like(scale, (spec.qmax + 1) / 2)
        return QParams(scale, zero, spec.qmin, spec.qmax)
    if spec.include_zero:
        xmin, xmax = xmin.clamp(max=0), xmax.clamp(min=0)
    # A constant row has no range: widen it to contain 0 (then exact), and an all-zero row to [-1, 1].
    flat = xmax <= xmin
    xmin, xmax = torch.where(flat, xmin.clamp(max=0), xmin), torch.where(flat, xmax.clamp(min=0), xmax)
    both0 = xmax <= xmin
    xmin, xmax = torch.where(both0, -torch.ones_like(xmin), xmin), torch.where(both0, torch.ones_like(xmax), xmax)
    xmin, xmax = xmin * ratio, xmax * ratio
    scale = (xmax - xmin) / spec.qmax
    zero = torch.round(-xmin / scale).clamp(spec.qmin, spec.qmax)
    return QParams(scale, zero, spec.qmin, spec.qmax)


def quantize(x: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor, qmin: int, qmax: int) -> torch.Tensor:
    """Integer codes (as float32 values) clamp(round(x / scale) + zero, qmin, qmax); broadcasting."""
    return torch.clamp(torch.round(x.float() / scale) + zero, qmin, qmax)


def dequantize(q: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor) -> torch.Tensor:
    """scale * (q - zero), float32."""
    return scale * (q.float() - zero)


def mse_clip_search(rows: torch.Tensor, spec: QuantSpec, norm: float = MSE_NORM, grid: int = MSE_GRID,
                    maxshrink: float = MSE_MAXSHRINK) -> QParams:
    """Per-row shrink factor p in {1, 1 - 1/grid, ...} (int(maxshrink*grid) values) minimising
    sum |Q_p(x) - x|^norm, as IST gptq `Quantizer.find_params(mse=True)`.

    The row extents are found once, and |e|^norm is computed as exp(norm * log|e|) (vectorized; about
    twice as fast as pow on a CPU, equal to ~2e-6 relative)."""
    rows = rows.float()
    extents = (rows.amin(dim=1, keepdim=True), rows.amax(dim=1, keepdim=True))
    best_err = torch.full((rows.shape[0], 1), float("inf"), device=rows.device)
    best = compute_qparams(rows, spec, clip_ratio=1.0, extents=extents)
    for i in range(int(maxshrink * grid)):
        p = 1 - i / grid
        qp = compute_qparams(rows, spec, clip_ratio=p, extents=extents)
        err = (qp.fake_quantize(rows) - rows).abs_().log_().mul_(norm).exp_().sum(1, keepdim=True)
        better = err < best_err
        best_err = torch.where(better, err, best_err)
        best.scale = torch.where(better, qp.scale, best.scale)
        best.zero = torch.where(better, qp.zero, best.zero)
    return best


def find_qparams(rows: torch.Tensor, spec: QuantSpec) -> QParams:
    """Parameters for each row of a 2-D view, with the spec's clipping (ratio or "mse")."""
    if spec.clip_ratio == "mse":
        return mse_clip_search(rows, spec)
    return compute_qparams(rows, spec)


def quantize_tensor(x: torch.Tensor, spec: QuantSpec) -> tuple[torch.Tensor, QParams]:
    """Integer codes in x's shape (float32 holding integers) and the per-row parameters of the grouped view."""
    rows = to_rows(x, spec.granularity, spec.group_size)
    qp = find_qparams(rows, spec)
    q = quantize(rows, qp.scale, qp.zero, qp.qmin, qp.qmax)
    return q.reshape(x.shape), qp


def fake_quantize(x: torch.Tensor, spec: Union[QuantSpec, int], **options) -> torch.Tensor:
    """Quantize then dequantize x; same shape and dtype as x (math in float32). The one fake-quantize entry.

    spec: a QuantSpec, or the bit-width with the QuantSpec fields as keywords (see the module docstring).

    >>> fake_quantize(w, QuantSpec(4, granularity="group", group_size=128))   # W4 g128 asymmetric (Eq. 1)
    >>> fake_quantize(x, 8, sym=True, granularity="token", clip_ratio=0.9)    # A8 per-token symmetric
    """
    if isinstance(spec, QuantSpec):
        if options:
            raise TypeError(f"fake_quantize got a QuantSpec and options {sorted(options)}; give one or the other")
    else:
        spec = QuantSpec(bits=spec, **options)
    rows = to_rows(x, spec.granularity, spec.group_size)
    return find_qparams(rows, spec).fake_quantize(rows).reshape(x.shape).to(x.dtype)


def weight_qparams(w: torch.Tensor, spec: QuantSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """(scale, zero) of a weight [out, in] reshaped to (out, n_groups) (n_groups = 1 per-channel)."""
    if spec.granularity not in ("channel", "group"):
        raise ValueError(f"weight_qparams needs granularity 'channel' or 'group', got {spec.granularity!r}")
    qp = find_qparams(to_rows(w, spec.granularity, spec.group_size), spec)
    return qp.scale.reshape(w.shape[0], -1), qp.zero.reshape(w.shape[0], -1)


# ----------------------------------------------------------------------------------------------
# Dynamic activation quantizer (per token, computed at run time).

class ActQuantizer(nn.Module):
    """Fake-quantizes its input dynamically: one scale per token (or per group of the last dim).

    Used for linear inputs (W-A methods), linear outputs (K/V when a family has no attention hook)
    and attention matmul inputs. `bits=16` makes it the identity."""

    def __init__(self, bits: int = 8, sym: bool = False, clip_ratio: float = 1.0, group_size: Optional[int] = None,
                 sym_convention: str = DEFAULT_SYM_CONVENTION):
        super().__init__()
        check_bits(bits, "a_bits", allow_16=True)
        if clip_ratio == "mse":
            raise ValueError("clip_ratio='mse' is a weight option; activations take a float in (0, 1]")
        gran = "token" if group_size is None else "group"
        self.spec = QuantSpec(bits=bits, sym=sym, granularity=gran, group_size=group_size, clip_ratio=clip_ratio,
                              sym_convention=sym_convention)

    @property
    def bits(self) -> int:
        return self.spec.bits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.spec.bits >= 16:
            return x
        return fake_quantize(x, self.spec)

    def get_config(self) -> dict:
        s = self.spec
        return dict(bits=s.bits, sym=s.sym, clip_ratio=s.clip_ratio, group_size=s.group_size,
                    sym_convention=s.sym_convention)

    def extra_repr(self) -> str:
        return self.spec.describe()
