"""Weight-activation plumbing shared by SmoothQuant, QuaRot and DuQuant.

* `AttentionInputQuantizer`: fake-quantizes the inputs of the two attention matmuls, Q·Kᵀ and P·V,
  one scale per (head, token) row of head_dim values, optionally after a Hadamard on the head dim
  applied to both Q and K (Q Kᵀ is unchanged by it). The softmax output P stays in 16 bit, as in the
  reference code. Installed through `layout.set_attention_input_quantizer` (q, k after RoPE).
* `install_attention_quantizers`: that on LLaDA/Dream; on Llama-family baselines (no attention hook)
  the fallback is a QuantLinear *output* quantizer on the q/k/v projections: K is then quantized
  before RoPE and without the head-dim Hadamard. This is an approximation, and the report says so.
"""
from __future__ import annotations

from typing import Iterable, Optional

import torch
import torch.nn as nn

from .hadamard import HadamardRotation
from .qlinear import QuantLinear, register_module
from .quantizer import ActQuantizer, QParams, QuantSpec, to_rows, weight_qparams


def rtn_linear(linear: nn.Module, spec: Optional[QuantSpec], method: str, **kwargs) -> QuantLinear:
    """QuantLinear with an RTN weight whose parameters are searched once (an MSE clip search is costly)."""
    if spec is None:
        return QuantLinear.from_linear(linear, None, method=method, **kwargs)
    w = linear.weight.data
    scale, zero = weight_qparams(w, spec)  # (out, n_groups)
    rows = to_rows(w, spec.granularity, spec.group_size)
    wq = QParams(scale.reshape(-1, 1), zero.reshape(-1, 1), spec.qmin, spec.qmax).fake_quantize(rows).reshape(w.shape)
    return QuantLinear.from_linear(linear, spec, weight=wq.to(w.dtype), scale=scale, zero=zero, method=method,
                                   **kwargs)


@register_module
class AttentionInputQuantizer(nn.Module):
    """(q, k, v) -> (q, k, v): optional head-dim Hadamard on q and k, then per-(head, token) fake quantization.

    q, k, v: (B, heads, T, head_dim). Bits of 16 leave that input in full precision."""

    def __init__(self, q_bits: int = 16, k_bits: int = 16, v_bits: int = 16, sym: bool = False,
                 clip_ratio: float = 1.0, kv_sym: Optional[bool] = None, kv_clip_ratio: Optional[float] = None,
                 head_dim: Optional[int] = None, rotate_qk: bool = False, v_clip_ratio: Optional[float] = None):
        super().__init__()
        kv_sym = sym if kv_sym is None else kv_sym
        kv_clip_ratio = clip_ratio if kv_clip_ratio is None else kv_clip_ratio
        v_clip_ratio = kv_clip_ratio if v_clip_ratio is None else v_clip_ratio  # DuQuant clips Q, K but not V
        self.config = dict(q_bits=q_bits, k_bits=k_bits, v_bits=v_bits, sym=sym, clip_ratio=clip_ratio,
                           kv_sym=kv_sym, kv_clip_ratio=kv_clip_ratio, head_dim=head_dim, rotate_qk=rotate_qk,
                           v_clip_ratio=v_clip_ratio)
        self.q_quant = ActQuantizer(q_bits, sym=sym, clip_ratio=clip_ratio)
        self.k_quant = ActQuantizer(k_bits, sym=kv_sym, clip_ratio=kv_clip_ratio)
        self.v_quant = ActQuantizer(v_bits, sym=kv_sym, clip_ratio=v_clip_ratio)
        if rotate_qk and head_dim is None:
            raise ValueError("rotate_qk=True needs head_dim")
        self.qk_rotation = HadamardRotation(head_dim) if rotate_qk else None

    def get_config(self) -> dict:
        return dict(self.config)

    def extra_repr(self) -> str:
        c = self.config
        return f"q={c['q_bits']}, k={c['k_bits']}, v={c['v_bits']}, rotate_qk={c['rotate_qk']}"

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor):
        if self.qk_rotation is not None:
            q, k = self.qk_rotation(q), self.qk_rotation(k)
        return self.q_quant(q), self.k_quant(k), self.v_quant(v)


def _device(module: nn.Module) -> torch.device:
    return next(module.parameters()).device


def install_attention_quantizers(layout, q_bits: int, kv_bits: int, sym: bool, clip_ratio: float,
                                 kv_sym: Optional[bool] = None, kv_clip_ratio: Optional[float] = None,
                                 rotate_qk: bool = False, blocks: Optional[Iterable[int]] = None,
                                 v_clip_ratio: Optional[float] = None) -> str:
    """Quantize the attention-matmul inputs of `blocks` (default: all); returns how ("attention-hook",
    "projection-outputs", or "none" when all bits are 16).

    Llama-family fallback: output quantizers on the q/k/v QuantLinears (per head: group = head_dim)."""
    if q_bits >= 16 and kv_bits >= 16:
        return "none"
    kv_sym = sym if kv_sym is None else kv_sym
    kv_clip_ratio = clip_ratio if kv_clip_ratio is None else kv_clip_ratio
    v_clip_ratio = kv_clip_ratio if v_clip_ratio is None else v_clip_ratio
    chosen = layout.blocks if blocks is None else [layout.blocks[i] for i in blocks]
    if layout.blocks and layout.blocks[0].attention is not None:
        for b in chosen:
            layout.set_attention_input_quantizer(b.index, AttentionInputQuantizer(
                q_bits, kv_bits, kv_bits, sym=sym, clip_ratio=clip_ratio, kv_sym=kv_sym,
                kv_clip_ratio=kv_clip_ratio, head_dim=layout.head_dim, rotate_qk=rotate_qk,
                v_clip_ratio=v_clip_ratio).to(_device(b.module)))
        return "attention-hook"
    for b in chosen:
        for role, bits, s, c in (("q", q_bits, sym, clip_ratio), ("k", kv_bits, kv_sym, kv_clip_ratio),
                                 ("v", kv_bits, kv_sym, v_clip_ratio)):
            if bits >= 16:
                continue
            lin = b.get(role)
            if not isinstance(lin, QuantLinear):
                lin = QuantLinear.from_linear(lin)
                b.set(role, lin)
            lin.output_quantizer = ActQuantizer(bits, sym=s, clip_ratio=c, group_size=layout.head_dim)
    return "projection-outputs"
