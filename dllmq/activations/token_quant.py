"""Per-token activation fake quantization and its error (the quantizer a W-A method puts on each input).

Asymmetric round-to-nearest with one (scale, zero) per token, range always containing 0 (as the per-token
activation quantizers of QuaRot / DuQuant): lo = min(min_c x, 0), hi = max(max_c x, 0),
s = (hi - lo) / (2^b - 1), z = round(-lo / s), Q(x) = (clamp(round(x / s) + z, 0, 2^b - 1) - z) * s.
Q is the kit's one quantizer (dllmq.quant.quantizer); `_token_quant_sse` is its squared error computed in
one pass for the streaming statistics (a test holds the two equal).
"""
from __future__ import annotations

import torch

from ..quant.quantizer import QuantSpec, fake_quantize

BULK_RATIO = 16.0  # a token's "bulk": entries below this many times its mean |x|
_TINY = 1e-30


ACTIVATION_SPEC = dict(sym=False, granularity="token", include_zero=True)  # QuaRot's / DuQuant's per-token grid


def fake_quant_per_token(x: torch.Tensor, bits: int) -> torch.Tensor:
    """Asymmetric per-token (last-dim) round-to-nearest fake quantization, the usual activation quantizer.

    The range always contains 0: lo = min(min_c x, 0), hi = max(max_c x, 0); scale = (hi - lo) / (2^b - 1),
    zero = round(-lo / scale), Q(x) = (clamp(round(x / scale) + zero, 0, 2^b - 1) - zero) * scale.
    The kit's one quantizer computes it (`dllmq.quant.quantizer.fake_quantize` with this spec)."""
    return fake_quantize(x, QuantSpec(bits=bits, **ACTIVATION_SPEC))


def bulk_mask(x: torch.Tensor) -> torch.Tensor:
    """The "bulk" of each token: entries with |x_tc| < BULK_RATIO * mean_c |x_tc| (outliers left out)."""
    a = x.abs()
    return a < BULK_RATIO * a.mean(-1, keepdim=True)


def per_token_quant_error(x: torch.Tensor, bits: int, bulk: bool = False) -> torch.Tensor:
    """Relative MSE ||x_t - Q(x_t)||^2 / ||x_t||^2 of every token (row) of x (..., C) -> (...).

    bulk=True measures both norms on the token's bulk only (`bulk_mask`): on a massive-outlier token the
    huge entry sets the quantization step and the whole bulk rounds to zero (relative error ~1), while
    the error over the whole token stays small because the huge entry itself is kept."""
    x = x.float()
    d2 = (fake_quant_per_token(x, bits) - x).pow(2)
    x2 = x.pow(2)
    if bulk:
        keep = bulk_mask(x)
        d2, x2 = d2 * keep, x2 * keep
    return d2.sum(-1) / x2.sum(-1).clamp(min=_TINY)


def _token_quant_sse(x: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, bits: int) -> torch.Tensor:
    """Per-token ||x - Q(x)||^2 of `fake_quant_per_token`, computed in the scaled domain (fewer passes):
    Q(x)/s = clamp(round(x/s), -z, qmax - z)."""
    qmax = 2 ** bits - 1
    scale = ((hi - lo) / qmax).clamp(min=1e-8)  # (N, 1)
    zero = torch.round(-lo / scale)
    xs = x / scale
    d = torch.clamp(torch.round(xs), -zero, qmax - zero).sub_(xs)
    return torch.linalg.vecdot(d, d) * scale.squeeze(-1) ** 2
