"""Real low-bit storage, next to the fake-quant reference semantics.

* packed int4: the integer codes of a weight-only QuantLinear (<= 4 bits: GPTQ, AWQ, RTN) stored two per
  byte, plus per-group scales and zero points; `PackedLinear` dequantizes on the fly (or once, cached).
  Dequantizing gives back exactly the fake-quantized weight.
    codes u = clamp(round(W_hat / s) + z - qmin, 0, 2^b - 1)  (unsigned, so signed grids fit too)
    byte j of row r = u[r, 2j] | u[r, 2j + 1] << 4
    W_hat = s[:, g_idx] * (u - (z - qmin)[:, g_idx])
* bitsandbytes: swap every block linear for an NF4 (`Linear4bit`, block 64) or LLM.int8 (`Linear8bitLt`)
  layer; data-free baselines that run on CPU with bitsandbytes >= 0.45.
* `weight_memory(model)`: bytes actually held by the block linears' weights (and their scales), measured
  from the tensors; `memory_table` compares FP32, BF16, fake-quant, packed int4, NF4 and INT8.
"""
from __future__ import annotations

import copy
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from .qlinear import QuantLinear, register_module
from .quantizer import QuantSpec

PACK_MAX_BITS = 4


def pack_int4(u: torch.Tensor) -> torch.Tensor:
    """Codes in [0, 15], shape (out, in) with even in -> uint8 (out, in // 2)."""
    if u.shape[-1] % 2:
        raise ValueError(f"pack_int4 needs an even number of columns, got {u.shape[-1]}")
    u = u.to(torch.uint8)
    return u[..., 0::2] | (u[..., 1::2] << 4)


def unpack_int4(packed: torch.Tensor) -> torch.Tensor:
    """Inverse of pack_int4: uint8 (out, in // 2) -> uint8 codes (out, in)."""
    low, high = packed & 0x0F, packed >> 4
    return torch.stack((low, high), dim=-1).flatten(-2)  # (out, in // 2, 2) -> (out, in)


def _column_params(q: QuantLinear) -> tuple:
    """Per-column scale and zero (out, in) from the stored per-group ones and g_idx."""
    scale, zero = q.w_scale, q.w_zero
    n_in = q.in_features
    if q.g_idx is not None:
        g_idx = q.g_idx
    elif scale.shape[1] == 1:
        g_idx = torch.zeros(n_in, dtype=torch.long, device=scale.device)
    else:
        g_idx = torch.arange(n_in, device=scale.device) // (n_in // scale.shape[1])
    return scale[:, g_idx], zero[:, g_idx], g_idx


def can_pack(q: QuantLinear) -> bool:
    return (isinstance(q, QuantLinear) and q.w_spec is not None and q.w_spec.bits <= PACK_MAX_BITS
            and q.w_scale is not None and q.in_features % 2 == 0)


@torch.no_grad()
def weight_codes(q: QuantLinear) -> tuple:
    """Unsigned codes u = clamp(round(W_hat / s) + z - qmin, 0, 2^b - 1) (out, in) of a quantized QuantLinear,
    their offsets o = z - qmin (out, G), and the column -> group map: W_hat = s[:, g_idx] (u - o[:, g_idx])."""
    spec = q.w_spec
    scale_c, zero_c, g_idx = _column_params(q)
    u = (torch.round(q.weight.float() / scale_c) + zero_c - spec.qmin).clamp(0, 2 ** spec.bits - 1)
    return u, (q.w_zero - spec.qmin).float(), g_idx


@torch.no_grad()
def pack_codes(q: QuantLinear) -> dict:
    """Packed codes and parameters of a QuantLinear: qweight uint8 (out, in/2), scales, zeros (out, G), g_idx."""
    if not can_pack(q):
        raise ValueError(f"this layer cannot be packed: needs a weight quantized at <= {PACK_MAX_BITS} bits with "
                         "recorded scales (GPTQ/AWQ/RTN QuantLinear) and an even in_features")
    codes, zeros, g_idx = weight_codes(q)
    return {"qweight": pack_int4(codes), "scales": q.w_scale.float(), "zeros": zeros, "g_idx": g_idx}


def dequantize_packed(qweight: torch.Tensor, scales: torch.Tensor, zeros: torch.Tensor,
                      g_idx: torch.Tensor) -> torch.Tensor:
    """W_hat (float32, (out, in)) from packed codes."""
    u = unpack_int4(qweight).float()
    return scales[:, g_idx] * (u - zeros[:, g_idx])


@register_module
class PackedLinear(nn.Module):
    """A Linear whose weight is stored as packed int4 codes; dequantized at each forward (or cached)."""

    def __init__(self, in_features: int, out_features: int, n_groups: int, bits: int = 4, bias: bool = False,
                 dtype: str = "float32", cache: bool = False, scale_dtype: str = "float16",
                 w_spec: Optional[dict] = None):
        super().__init__()
        self.in_features, self.out_features, self.bits, self.cache = in_features, out_features, bits, cache
        self.w_spec = w_spec  # the QuantSpec (as a dict) the codes came from
        self.dtype_name, self.scale_dtype = dtype, scale_dtype
        self.register_buffer("qweight", torch.zeros(out_features, in_features // 2, dtype=torch.uint8))
        self.register_buffer("scales", torch.zeros(out_features, n_groups, dtype=getattr(torch, scale_dtype)))
        self.register_buffer("zeros", torch.zeros(out_features, n_groups, dtype=torch.uint8))
        self.register_buffer("g_idx", torch.zeros(in_features, dtype=torch.int32))
        self.bias = nn.Parameter(torch.zeros(out_features, dtype=getattr(torch, dtype)), requires_grad=False) if bias else None
        self._w = None

    @classmethod
    def from_quantlinear(cls, q: QuantLinear, cache: bool = False, scale_dtype: str = "float16") -> "PackedLinear":
        """Pack a weight-only QuantLinear. scale_dtype "float32" makes dequantization bit-exact;
        "float16" (real formats) perturbs each weight by at most ~2^-11 relative."""
        if q.input_transform is not None or q.act_quantizer is not None or q.output_quantizer is not None:
            raise ValueError("PackedLinear stores weight-only layers; this QuantLinear has a transform or "
                             "activation quantizer")
        p = pack_codes(q)
        dtype = str(q.weight.dtype).replace("torch.", "")
        m = cls(q.in_features, q.out_features, p["scales"].shape[1], q.w_spec.bits, q.bias is not None, dtype, cache,
                scale_dtype, q.w_spec.to_dict())
        m.qweight.copy_(p["qweight"])
        m.scales.copy_(p["scales"])
        m.zeros.copy_(p["zeros"].to(torch.uint8))
        m.g_idx.copy_(p["g_idx"].int())
        if q.bias is not None:
            m.bias.data.copy_(q.bias.data)
        return m.to(q.weight.device)

    def get_config(self) -> dict:
        return dict(in_features=self.in_features, out_features=self.out_features, n_groups=self.scales.shape[1],
                    bits=self.bits, bias=self.bias is not None, dtype=self.dtype_name, cache=self.cache,
                    scale_dtype=self.scale_dtype, w_spec=self.w_spec)

    def dequantized_weight(self) -> torch.Tensor:
        if self._w is not None:
            return self._w
        w = dequantize_packed(self.qweight, self.scales.float(), self.zeros.float(), self.g_idx.long())
        w = w.to(getattr(torch, self.dtype_name))
        if self.cache:
            self._w = w
        return w

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.dequantized_weight().to(x.dtype), self.bias)

    def to_quantlinear(self) -> QuantLinear:
        """A QuantLinear with the dequantized weight and the same quantization metadata."""
        dtype = getattr(torch, self.dtype_name)
        q = QuantLinear(self.in_features, self.out_features, bias=self.bias is not None, device=self.qweight.device,
                        dtype=dtype)
        spec = QuantSpec(**self.w_spec) if self.w_spec else None
        qmin = spec.qmin if spec is not None else 0
        g_idx = self.g_idx.long()
        n_groups = self.scales.shape[1]
        default = torch.arange(self.in_features, device=g_idx.device) // (self.in_features // n_groups)
        q.set_weight(self.dequantized_weight(), spec, self.scales.float(), self.zeros.float() + qmin,
                     g_idx=None if torch.equal(g_idx, default) else g_idx, method="packed")
        if self.bias is not None:
            q.bias.data.copy_(self.bias.data)
        return q

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, packed int{self.bits}"


def pack_model(model: nn.Module, cache: bool = False, scale_dtype: str = "float16") -> int:
    """Replace every packable QuantLinear by a PackedLinear (in place). Returns how many were packed."""
    from ..models import get_layout

    n = 0
    for block in get_layout(model).blocks:
        for role, lin in block.linears.items():
            if can_pack(lin) and lin.input_transform is None and lin.act_quantizer is None:
                block.set(role, PackedLinear.from_quantlinear(lin, cache=cache, scale_dtype=scale_dtype))
                n += 1
    return n


def unpack_model(model: nn.Module) -> int:
    """Replace every PackedLinear by a QuantLinear holding the dequantized weight (in place). Returns the count."""
    from ..models import get_layout

    n = 0
    for block in get_layout(model).blocks:
        for role, lin in block.linears.items():
            if isinstance(lin, PackedLinear):
                block.set(role, lin.to_quantlinear())
                n += 1
    return n


# ----------------------------------------------------------------------------------------------
# bitsandbytes

BNB_FORMATS = ("nf4", "int8")


def bnb_linear(linear: nn.Linear, fmt: str) -> nn.Module:
    """A bitsandbytes layer holding `linear`'s weight as NF4 (block 64) or LLM.int8 (threshold 0)."""
    import bitsandbytes as bnb

    w = linear.weight.data.float().cpu()
    if fmt == "nf4":
        layer = bnb.nn.Linear4bit(linear.in_features, linear.out_features, bias=linear.bias is not None,
                                  quant_type="nf4", compute_dtype=torch.float32)
        layer.weight = bnb.nn.Params4bit(w, requires_grad=False, quant_type="nf4")
    elif fmt == "int8":
        layer = bnb.nn.Linear8bitLt(linear.in_features, linear.out_features, bias=linear.bias is not None,
                                    has_fp16_weights=False, threshold=0.0)
        layer.weight = bnb.nn.Int8Params(w, requires_grad=False, has_fp16_weights=False)
    else:
        raise ValueError(f"fmt={fmt!r} is unknown; allowed: {BNB_FORMATS}")
    if linear.bias is not None:
        layer.bias = nn.Parameter(linear.bias.data.float().cpu(), requires_grad=False)
    return layer.to("cpu")  # the move quantizes the weight


def _cast(model: nn.Module, dtype: torch.dtype) -> nn.Module:
    """Cast floating parameters/buffers in place (transformers refuses .float() on GGUF-loaded models)."""
    for t in list(model.parameters()) + list(model.buffers()):
        if t.is_floating_point():
            t.data = t.data.to(dtype)
    return model


def bnb_quantize(model: nn.Module, fmt: str = "nf4") -> nn.Module:
    """Swap every block linear for a bitsandbytes layer (in place, CPU). Head/embeddings stay FP."""
    from ..models import get_layout

    if fmt not in BNB_FORMATS:
        raise ValueError(f"fmt={fmt!r} is unknown; allowed: {BNB_FORMATS}")
    _cast(model.to("cpu"), torch.float32)
    for block in get_layout(model).blocks:
        for role, lin in block.linears.items():
            if not isinstance(lin, nn.Linear):
                raise TypeError(f"bnb_quantize needs plain nn.Linear layers, block {block.index} {role} is "
                                f"{type(lin).__name__}")
            block.set(role, bnb_linear(lin, fmt))
    return model


# ----------------------------------------------------------------------------------------------
# Memory

def _bytes(t: Optional[torch.Tensor]) -> int:
    return 0 if t is None else t.numel() * t.element_size()


def layer_weight_bytes(layer: nn.Module) -> int:
    """Bytes held for one linear's weight and its quantization parameters (bias excluded)."""
    if isinstance(layer, PackedLinear):
        return sum(_bytes(t) for t in (layer.qweight, layer.scales, layer.zeros, layer.g_idx))
    if callable(getattr(layer, "weight_bytes", None)):  # kernel-backend layers (kernels.py) count their own layout
        return layer.weight_bytes()
    total = _bytes(layer.weight)
    state = getattr(layer.weight, "quant_state", None)  # bitsandbytes NF4
    if state is not None:
        total += _bytes(state.absmax)  # one absmax per block of 64 (the 16-entry NF4 code book is shared)
    total += _bytes(getattr(layer.weight, "SCB", None)) + _bytes(getattr(layer, "SCB", None))  # LLM.int8
    return total


def weight_memory(model: nn.Module) -> int:
    """Bytes of all block-linear weights of `model` (what quantization compresses)."""
    from ..models import get_layout

    return sum(layer_weight_bytes(lin) for b in get_layout(model).blocks for lin in b.linears.values())


def memory_table(model: nn.Module, recipe: str = "rtn:w4a16g128", calib: Optional[torch.Tensor] = None):
    """Measured weight bytes of the block linears in each storage format (pandas DataFrame).

    The model is deep-copied for every row; `recipe` (weight-only, <= 4 bits) makes the fake-quant and
    packed rows. (The kernel backend's layouts: benchmarks/bench_lowbit.py and kernels.py.)"""
    import pandas as pd

    from . import quantize

    rows = []

    def add(fmt, m, note=""):
        rows.append({"format": fmt, "bytes": weight_memory(m), "note": note})

    add("fp32", _cast(copy.deepcopy(model), torch.float32))
    add("bf16", _cast(copy.deepcopy(model), torch.bfloat16))
    fq, _ = quantize(_cast(copy.deepcopy(model), torch.float32), recipe, calib, inplace=True)
    add("fake-quant", fq, f"{recipe}: quantized values held in fp32")
    packed = copy.deepcopy(fq)
    pack_model(packed)
    add("packed-int4", packed, "2 codes/byte + fp16 scales + uint8 zeros + int32 g_idx")
    for fmt in BNB_FORMATS:
        try:
            add(fmt, bnb_quantize(copy.deepcopy(model), fmt), "bitsandbytes")
        except Exception as err:  # bitsandbytes missing or unsupported here: say so in the table
            rows.append({"format": fmt, "bytes": None, "note": f"unavailable: {type(err).__name__}: {err}"[:120]})
    df = pd.DataFrame(rows)
    base = df.loc[df.format == "fp32", "bytes"].iloc[0]
    df["vs_fp32"] = df["bytes"].map(lambda b: None if b is None else round(b / base, 4))
    return df
