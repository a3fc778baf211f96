"""Real low-bit matmuls behind the `QuantLinear` semantics: the "kernel" backend.

The fake path computes y = act_q(T(x)) @ W_hat^T + b in float. Here the same integer codes are multiplied by
maintained PyTorch kernels instead, so the numbers are the fake-quant grid (up to float rounding):

* `Int8Linear` (W8A8; also any W<=8 per-channel / A<=8 per-token recipe, e.g. W4A4 codes in int8 containers):
  per-token dynamic activation codes computed exactly as `ActQuantizer` does, an int8 GEMM with int32
  accumulation, then the per-token x per-channel rescale. With codes c and offsets o (x_hat = s (c - o))::

      sum_k (c_x - o_x)(w - o_w) = sum_k (c_x - zp) w  -  (o_x - zp) sum_k w  -  o_w sum_k (c_x - o_x)

  The first term is the GEMM (zp = 2^(a-1), a constant the kernel subtracts in int32); the other two are
  rank-1 zero-point corrections, skipped when the grids are symmetric. So asymmetric grids are supported.
  CPU: oneDNN `onednn.qlinear_pointwise` (u8 x s8, VNNI). CUDA: `torch._int_mm` (s8 x s8 -> s32).
* `Int4WeightLinear` (W4A16, GPTQ / AWQ / RTN, <= 4 bits): PyTorch's int4 weight-pack matmul (tinygemm layout:
  W = s (u - 8) + m per group, so m = s (8 - o) reproduces s (u - o)). Groups of 32/64/128/256; per-channel
  grids become groups with repeated scales; GPTQ act-order (g_idx) becomes a column permutation of x.
  Activations run in `compute_dtype` (bfloat16 by default: the fast CPU path; float32 is an exact but slow
  reference on CPU).

Each layer holds its weight in the kernel's layout only (no float copy); `state_dict` always holds portable
tensors (int8 codes / two int4 codes per byte as in `backends.pack_int4`), so save/load and deepcopy work and
the kernel layout is rebuilt for whatever device the layer moves to.
"""
from __future__ import annotations

import copy
from typing import Optional

import torch
import torch.nn as nn

from ..env import cpu_has_vnni
from .qlinear import QuantLinear, build_module, module_spec, register_module
from .quantizer import ActQuantizer, QuantSpec, compute_qparams

BACKENDS = ("fake", "kernel")
INT4_GROUP_SIZES = (256, 128, 64, 32)  # what the int4 weight-pack kernels accept
COMPUTE_DTYPES = ("bfloat16", "float32")


def grid_codes(q: QuantLinear) -> tuple:
    """`backends.weight_codes(q)` (codes u, offsets o, g_idx), checked: s (u - o) must give back the stored
    weight, or the kernel would multiply something other than the fake-quant grid."""
    from .backends import weight_codes

    u, off, g_idx = weight_codes(q)
    err = (q.w_scale[:, g_idx] * (u - off[:, g_idx]) - q.weight.float()).abs().max()
    if err > 1e-5 * q.weight.float().abs().max().clamp(min=1e-30):
        raise ValueError(f"the weight is not on the grid its w_scale/w_zero describe (max error {err:.3g}); "
                         "only layers quantized by dllmq methods can run on the kernel backend")
    return u, off, g_idx


def _act_spec(q: QuantLinear) -> Optional[QuantSpec]:
    aq = q.act_quantizer
    if aq is None or getattr(aq, "bits", 16) >= 16:
        return None
    if not isinstance(aq, ActQuantizer):
        raise ValueError(f"act_quantizer is a {type(aq).__name__}; the int8 GEMM reproduces dllmq's ActQuantizer only")
    if aq.spec.granularity != "token":
        raise ValueError(f"act_quantizer group_size={aq.spec.group_size}: the int8 GEMM needs one activation scale "
                         "per token; allowed: group_size=None (per-token)")
    if aq.bits > 8:
        raise ValueError(f"a_bits={aq.bits} does not fit the int8 GEMM; allowed: a_bits <= 8, or 16 (weight-only)")
    return aq.spec


class _KernelLinear(nn.Module):
    """Shared plumbing: transforms kept as in QuantLinear, portable state dict, repack on device moves."""

    def _init_common(self, in_features, out_features, bias, input_transform, output_quantizer):
        self.in_features, self.out_features = in_features, out_features
        self.bias = nn.Parameter(torch.zeros(out_features), requires_grad=False) if bias else None
        self.input_transform = build_module(input_transform) if isinstance(input_transform, dict) else input_transform
        self.output_quantizer = (build_module(output_quantizer) if isinstance(output_quantizer, dict)
                                 else output_quantizer)
        self._kernel = None

    def _pack(self) -> None:  # portable buffers -> self._kernel (may free the portable ones)
        raise NotImplementedError

    def _unpack(self) -> None:  # self._kernel -> portable buffers
        raise NotImplementedError

    def _apply(self, fn, recurse=True):
        here = next(self.buffers(recurse=False)).device
        if fn(torch.empty(0, device=here)).device == here:  # a dtype cast or a no-op move: the layout stays
            return super()._apply(fn, recurse)
        self._unpack()
        out = super()._apply(fn, recurse)
        self._pack()
        return out

    def _save_to_state_dict(self, destination, prefix, keep_vars):
        super()._save_to_state_dict(destination, prefix, keep_vars)
        for name, tensor in self._portable_tensors().items():
            destination[prefix + name] = tensor

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        self._unpack()
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self._pack()

    def __getstate__(self):  # deepcopy / pickle: portable tensors, no opaque kernel layout
        state = self.__dict__.copy()
        state["_buffers"] = {**self._buffers, **self._portable_tensors()}
        state["_kernel"] = None
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        self._pack()

    def _finish(self, y: torch.Tensor, shape, dtype) -> torch.Tensor:
        if self.bias is not None:
            y = y.add_(self.bias)  # y is the kernel's fresh output
        y = y.to(dtype).reshape(*shape[:-1], self.out_features)
        return y if self.output_quantizer is None else self.output_quantizer(y)

    def _common_config(self) -> dict:
        return dict(in_features=self.in_features, out_features=self.out_features, bias=self.bias is not None,
                    input_transform=module_spec(self.input_transform),
                    output_quantizer=module_spec(self.output_quantizer))


@register_module
class Int8Linear(_KernelLinear):
    """W<=8 per-channel x A<=8 per-token through an int8 GEMM with int32 accumulation (see module docstring)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = False, w_bits: int = 8, a_spec: dict = None,
                 w_asym: bool = True, input_transform=None, output_quantizer=None):
        super().__init__()
        self._init_common(in_features, out_features, bias, input_transform, output_quantizer)
        self.w_bits, self.w_asym = w_bits, w_asym
        self.a_spec = QuantSpec(**a_spec) if isinstance(a_spec, dict) else a_spec
        self.zp = 2 ** (self.a_spec.bits - 1)  # subtracted by the kernel: codes - zp fit int8
        self.register_buffer("qweight", torch.zeros(out_features, in_features, dtype=torch.int8))  # u - 2^(b-1)
        self.register_buffer("w_scale", torch.ones(out_features))  # s_w
        self.register_buffer("colsum_s", torch.zeros(out_features))  # s_w * sum_k w
        self.register_buffer("offset_s", torch.zeros(out_features))  # s_w * o_w (0 for a signed grid)

    @classmethod
    def from_quantlinear(cls, q: QuantLinear) -> "Int8Linear":
        spec, a_spec = q.w_spec, _act_spec(q)
        if a_spec is None:
            raise ValueError("Int8Linear needs a quantized activation (a_bits <= 8); weight-only layers use "
                             "Int4WeightLinear")
        if spec.bits > 8 or q.w_scale.shape[1] != 1 or q.g_idx is not None:
            raise ValueError(f"w_spec={spec.describe()}: the int8 GEMM applies one weight scale per output channel; "
                             "allowed: w_bits <= 8, per-channel (no group_size, no act-order g_idx)")
        u, off, _ = grid_codes(q)
        shift = 2 ** (spec.bits - 1)
        w = (u - shift)  # (out, in) in [-2^(b-1), 2^(b-1) - 1]
        s = q.w_scale[:, 0].float()
        off = off[:, 0] - shift
        m = cls(q.in_features, q.out_features, q.bias is not None, spec.bits, a_spec.to_dict(),
                bool(off.abs().max() > 0), copy.deepcopy(q.input_transform), copy.deepcopy(q.output_quantizer))
        m.qweight.copy_(w.to(torch.int8))
        m.w_scale.copy_(s)
        m.colsum_s.copy_(s * w.sum(1))
        m.offset_s.copy_(s * off)
        if q.bias is not None:
            m.bias.data.copy_(q.bias.data.float())
        m.to(q.weight.device)._pack()
        return m

    def _pack(self):
        if self._kernel is None and self.qweight is not None and self.qweight.device.type == "cpu" and cpu_has_vnni():
            self._kernel = torch.ops.onednn.qlinear_prepack(self.qweight, None)  # opaque oneDNN layout
            self.qweight = None  # the packed copy is the only one (state_dict rebuilds it)

    def _unpack(self):
        if self._kernel is not None:
            self.qweight = self._kernel.to_dense().t().contiguous()
            self._kernel = None

    def _portable_tensors(self) -> dict:
        return {"qweight": self.qweight if self._kernel is None else self._kernel.to_dense().t().contiguous()}

    def weight_bytes(self) -> int:
        w = self.qweight if self._kernel is None else self._kernel
        return w.numel() * w.element_size() + sum(t.numel() * 4 for t in (self.w_scale, self.colsum_s, self.offset_s))

    def _gemm(self, xc: torch.Tensor) -> torch.Tensor:
        """s_w * sum_k (c_x - zp) w, float32 (M, N), from uint8 codes c_x (M, K)."""
        if self._kernel is not None:  # CPU oneDNN: zero point subtracted in int32, s_w applied on output
            zeros = torch.zeros(self.out_features, dtype=torch.long)
            return torch.ops.onednn.qlinear_pointwise(xc, 1.0, self.zp, self._kernel, self.w_scale.float(), zeros, None, 1.0,
                                                      0, torch.float32, "none", [], "")
        if self.qweight.device.type == "cpu":  # a CPU without VNNI: the same integer product as an fp32 GEMM
            return ((xc.float() - self.zp) @ self.qweight.float().t()) * self.w_scale
        x8 = (xc.to(torch.int16) - self.zp).to(torch.int8)
        n_pad = max(0, 17 - x8.shape[0])  # torch._int_mm needs more than 16 rows
        acc = torch._int_mm(torch.nn.functional.pad(x8, (0, 0, 0, n_pad)), self.qweight.t())
        return acc[: x8.shape[0]].float() * self.w_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.input_transform is not None:
            x = self.input_transform(x)
        shape, dtype = x.shape, x.dtype
        x2 = x.reshape(-1, self.in_features).float()  # (M, K)
        # 1. per-token codes, as ActQuantizer computes them: clamp(round(x/s) + z, qmin, qmax) - qmin
        qp = compute_qparams(x2, self.a_spec)
        offset = qp.zero - qp.qmin  # (M, 1)
        codes = torch.div(x2, qp.scale).round_().add_(offset).clamp_(0, qp.qmax - qp.qmin)  # (M, K), in place
        # 2. int8 GEMM, int32 accumulation
        y = self._gemm(codes.to(torch.uint8))  # (M, N) float32, a fresh tensor: updated in place below
        # 3. zero-point corrections (asymmetric grids: rank-1 updates), then the per-token scale
        if not (self.a_spec.sym and self.a_spec.sym_convention == "signed"):
            y.addr_((offset - self.zp)[:, 0], self.colsum_s, alpha=-1)
        if self.w_asym:
            y.addr_((codes.sum(1, keepdim=True) - self.in_features * offset)[:, 0], self.offset_s, alpha=-1)
        return self._finish(y.mul_(qp.scale), shape, dtype)

    def get_config(self) -> dict:
        return dict(self._common_config(), w_bits=self.w_bits, a_spec=self.a_spec.to_dict(), w_asym=self.w_asym)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, W{self.w_bits}A{self.a_spec.bits} int8 GEMM"


def _cpu_int4_perm(n: int, k: int) -> torch.Tensor:
    """Where each nibble of `_convert_weight_to_int4pack_for_cpu`'s output comes from, found by packing the
    digits of the flat index (4 bits per call): the layout is a pure nibble permutation, so codes can be
    read back for saving without keeping a second copy. (Not cached: 8 bytes per weight.)"""
    idx = torch.arange(n * k).reshape(n, k)
    src = torch.zeros(n * k, dtype=torch.long)
    for digit in range(((n * k - 1).bit_length() + 3) // 4):
        packed = torch.ops.aten._convert_weight_to_int4pack_for_cpu(((idx >> (4 * digit)) & 15).int(), 1)
        src |= torch.stack((packed & 15, packed >> 4), -1).flatten().long() << (4 * digit)
    return src


@register_module
class Int4WeightLinear(_KernelLinear):
    """W<=4 A16: PyTorch's int4 weight-pack matmul (tinygemm layout) on the codes dllmq computed."""

    def __init__(self, in_features: int, out_features: int, bias: bool = False, group_size: int = 128, bits: int = 4,
                 compute_dtype: str = "bfloat16", has_perm: bool = False, input_transform=None,
                 output_quantizer=None):
        super().__init__()
        self._init_common(in_features, out_features, bias, input_transform, output_quantizer)
        if compute_dtype not in COMPUTE_DTYPES:
            raise ValueError(f"compute_dtype={compute_dtype!r} is unknown; allowed: {COMPUTE_DTYPES}")
        self.group_size, self.bits, self.compute_dtype = group_size, bits, compute_dtype
        n_groups = in_features // group_size
        self.register_buffer("qweight", torch.zeros(out_features, in_features // 2, dtype=torch.uint8))  # pack_int4
        self.register_buffer("scales", torch.ones(out_features, n_groups))  # s, float32: exact
        self.register_buffer("offsets", torch.zeros(out_features, n_groups, dtype=torch.uint8))  # o = z - qmin
        self.register_buffer("perm", torch.arange(in_features) if has_perm else None)  # act-order column order
        self._sz = None  # (G, N, 2) [s, s (8 - o)] in compute_dtype, built with the kernel layout

    @classmethod
    def from_quantlinear(cls, q: QuantLinear, compute_dtype: str = "bfloat16") -> "Int4WeightLinear":
        from .backends import pack_int4

        spec = q.w_spec
        if spec.bits > 4:
            raise ValueError(f"w_bits={spec.bits}: the int4 weight-pack kernel holds codes of <= 4 bits; weight-only "
                             "layers need w_bits <= 4 (8-bit weights need a_bits <= 8 for Int8Linear)")
        u, off, g_idx = grid_codes(q)
        k, n_groups = q.in_features, q.w_scale.shape[1]
        scale = q.w_scale.float()
        if n_groups == 1:  # per-channel: the same scale repeated over kernel-sized groups
            group = next((g for g in INT4_GROUP_SIZES if k % g == 0), None)
            if group is None:
                raise ValueError(f"in_features={k}: a per-channel int4 grid runs as groups of {INT4_GROUP_SIZES}, "
                                 "none of which divides it")
            scale, off = scale.repeat(1, k // group), off.repeat(1, k // group)
        else:
            group = k // n_groups
        if group not in INT4_GROUP_SIZES:
            raise ValueError(f"group_size={group}: the int4 weight-pack kernel takes group_size in "
                             f"{sorted(INT4_GROUP_SIZES)} (or per-channel)")
        perm = None
        if q.g_idx is not None and n_groups > 1:  # act-order: reorder columns so every group is contiguous
            perm = torch.argsort(g_idx, stable=True)
            if not torch.equal(g_idx[perm], torch.arange(k, device=g_idx.device) // group):
                raise ValueError("g_idx must give every group exactly group_size columns for the int4 kernel")
            u = u[:, perm]
        m = cls(k, q.out_features, q.bias is not None, group, spec.bits, compute_dtype, perm is not None,
                copy.deepcopy(q.input_transform), copy.deepcopy(q.output_quantizer))
        m._unpack()
        m.qweight.copy_(pack_int4(u))
        m.scales.copy_(scale)
        m.offsets.copy_(off.to(torch.uint8))
        if perm is not None:
            m.perm.copy_(perm)
        if q.bias is not None:
            m.bias.data.copy_(q.bias.data.float())
        m.to(q.weight.device)._pack()
        return m

    def _pack(self):
        if self._kernel is not None or self.qweight is None:
            return
        from .backends import unpack_int4

        dtype = getattr(torch, self.compute_dtype)
        s = self.scales.float()
        self._sz = torch.stack((s, s * (8 - self.offsets.float())), -1).transpose(0, 1).contiguous().to(dtype)
        codes = unpack_int4(self.qweight)  # (N, K)
        if self.qweight.device.type == "cpu":
            self._kernel = torch.ops.aten._convert_weight_to_int4pack_for_cpu(codes.int(), 1)
            self.qweight = None  # the kernel layout is the only copy (state_dict reads it back)
        else:  # CUDA tinygemm: bytes with the even column in the high nibble, bfloat16 only
            if self.compute_dtype != "bfloat16":
                raise ValueError(f"compute_dtype={self.compute_dtype!r}: the CUDA int4 kernel takes bfloat16 only")
            tiles = next((t for t in (8, 4, 2) if self.in_features % (16 * t) == 0), None)
            if tiles is None or self.out_features % 8:
                raise ValueError(f"in_features={self.in_features}, out_features={self.out_features}: the CUDA int4 "
                                 "kernel needs in_features a multiple of 32 and out_features a multiple of 8")
            self._kernel = torch.ops.aten._convert_weight_to_int4pack(
                ((codes[:, 0::2] << 4) | codes[:, 1::2]).contiguous(), tiles)

    def _unpack(self):
        if self._kernel is not None and self.qweight is None:
            self.qweight = self._portable_tensors()["qweight"]
        self._kernel = self._sz = None

    def _portable_tensors(self) -> dict:
        if self.qweight is not None:
            return {"qweight": self.qweight}
        from .backends import pack_int4

        p = self._kernel
        src = _cpu_int4_perm(self.out_features, self.in_features)
        codes = torch.empty(self.out_features * self.in_features, dtype=torch.uint8)
        codes[src] = torch.stack((p & 15, p >> 4), -1).flatten()
        return {"qweight": pack_int4(codes.reshape(self.out_features, self.in_features))}

    def weight_bytes(self) -> int:
        held = (self._kernel, self.qweight, self.scales, self.offsets, self._sz, self.perm)  # qweight: None on CPU
        return sum(t.numel() * t.element_size() for t in held if t is not None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.input_transform is not None:
            x = self.input_transform(x)
        shape, dtype = x.shape, x.dtype
        x2 = x.reshape(-1, self.in_features).to(getattr(torch, self.compute_dtype))
        if self.perm is not None:
            x2 = x2[:, self.perm]
        if self._kernel.is_cuda:
            y = torch.ops.aten._weight_int4pack_mm(x2, self._kernel, self.group_size, self._sz)
        else:
            y = torch.ops.aten._weight_int4pack_mm_for_cpu(x2, self._kernel, self.group_size, self._sz)
        return self._finish(y.float(), shape, dtype)

    def get_config(self) -> dict:
        return dict(self._common_config(), group_size=self.group_size, bits=self.bits,
                    compute_dtype=self.compute_dtype, has_perm=self.perm is not None)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, W{self.bits}A16 g{self.group_size} "
                f"int4-pack ({self.compute_dtype})")


def kernel_linear(q: QuantLinear, compute_dtype: str = "bfloat16") -> nn.Module:
    """The kernel-backed layer for one QuantLinear: Int8Linear when its activations are quantized, else
    Int4WeightLinear. An unsupported configuration is a ValueError naming what is allowed."""
    if not isinstance(q, QuantLinear):
        raise TypeError(f"kernel_linear needs a QuantLinear, got {type(q).__name__}")
    if q.w_spec is None or q.w_scale is None:
        raise ValueError("this QuantLinear has no quantized weight with recorded scales; nothing to run in low bits")
    if _act_spec(q) is not None:
        return Int8Linear.from_quantlinear(q)
    return Int4WeightLinear.from_quantlinear(q, compute_dtype=compute_dtype)


def to_kernel(model: nn.Module, compute_dtype: str = "bfloat16") -> int:
    """Replace every quantized block QuantLinear of `model` by its kernel layer (in place). Returns the count.

    Layers kept in full precision (w_spec None) stay QuantLinear. compute_dtype: activations of the int4
    weight-only matmul ("bfloat16", fast; "float32", exact but a slow reference kernel on CPU)."""
    from ..models import get_layout

    if compute_dtype not in COMPUTE_DTYPES:
        raise ValueError(f"compute_dtype={compute_dtype!r} is unknown; allowed: {COMPUTE_DTYPES}")
    layout = get_layout(model)
    swaps = []
    for block in layout.blocks:  # build everything first: an error leaves the model untouched
        for role, lin in block.linears.items():
            if isinstance(lin, QuantLinear) and lin.w_spec is not None:
                try:
                    swaps.append((block, role, kernel_linear(lin, compute_dtype)))
                except ValueError as err:
                    raise ValueError(f"block {block.index} role {role!r}: {err}") from None
    for block, role, layer in swaps:
        block.set(role, layer)
    return len(swaps)
