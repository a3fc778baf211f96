"""Building blocks shared by the native LLaDA and Dream classes: RMSNorm, rotary embedding, attention.

Both families are Llama-shaped transformers with *bidirectional* attention. The numerics follow the
official remote code: RMSNorm is computed in fp32 and cast back to the activation dtype; the cos/sin tables
are computed in fp32, and q/k are rotated either in fp32 (LLaDA's `rope_full_precision`) or in the
activation dtype with cos/sin cast to it (Dream's code) -- identical in fp32, different in bf16.
"""
from __future__ import annotations

from typing import Callable, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

# A hook a weight-activation method may install on an attention module to fake-quantize the inputs of
# the two attention matmuls (Q, K after RoPE and V). Signature: (q, k, v) -> (q, k, v).
AttnInputQuantizer = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], tuple]


class RMSNorm(nn.Module):
    """RMSNorm computed in fp32 (as LLaDA/OLMo and Qwen2 do), weight applied after casting back."""

    def __init__(self, hidden_size: int, eps: float = 1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden_size))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        x = x.float()
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x.to(dtype)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """NeoX/Llama layout: split the head dim in two halves, (a, b) -> (-b, a)."""
    a, b = x.chunk(2, dim=-1)
    return torch.cat((-b, a), dim=-1)


def rope_cos_sin(position_ids: torch.Tensor, head_dim: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin tables in fp32 for integer positions of shape (B, T) -> each (B, 1, T, head_dim)."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, device=position_ids.device, dtype=torch.float32) / head_dim))
    freqs = position_ids.float()[..., None] * inv_freq  # (B, T, head_dim/2)
    emb = torch.cat((freqs, freqs), dim=-1)  # (B, T, head_dim)
    return emb.cos()[:, None], emb.sin()[:, None]


def apply_rope(q: torch.Tensor, k: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
               full_precision: bool = True):
    """Rotate q and k: in fp32 and cast back (full_precision, LLaDA's official setting), or in q's dtype with
    the fp32 cos/sin tables cast to it first (Dream's official code). Same result when q is fp32."""
    dtype = q.dtype
    if full_precision:
        q, k, cos, sin = q.float(), k.float(), cos.float(), sin.float()
    else:
        cos, sin = cos.to(dtype), sin.to(dtype)
    q = q * cos + rotate_half(q) * sin
    k = k * cos + rotate_half(k) * sin
    return q.to(dtype), k.to(dtype)


def key_padding_mask(attention_mask: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
    """(B, T) 1/0 mask -> boolean SDPA mask (B, 1, 1, T): every query may attend to every real key.

    Rows that are entirely padding would produce NaN; those rows are allowed to see everything instead
    (their outputs are never used)."""
    if attention_mask is None:
        return None
    keep = attention_mask.bool()
    keep = keep | ~keep.any(dim=-1, keepdim=True)
    return keep[:, None, None, :]


def bidirectional_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: Optional[torch.Tensor],
    quantizer: Optional[AttnInputQuantizer] = None,
) -> torch.Tensor:
    """SDPA with is_causal=False. q: (B, nh, T, hs); k, v: (B, nkv, T, hs), repeated for GQA."""
    if quantizer is not None:
        q, k, v = quantizer(q, k, v)
    n_rep = q.shape[1] // k.shape[1]
    if n_rep > 1:
        k = k.repeat_interleave(n_rep, dim=1)
        v = v.repeat_interleave(n_rep, dim=1)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=False)
