"""QuantLinear: the drop-in replacement for nn.Linear that every PTQ method installs.

    y = out_q( act_q( T(x) ) @ W_hat^T + b )

    T       optional online input transform (Hadamard, rotation, permutation): any nn.Module
    act_q   optional per-token dynamic activation quantizer (a_bits=16: none)
    W_hat   the fake-quantized (quantized then dequantized) weight, stored in float as `weight`
    out_q   optional output quantizer (K/V cache simulation when the family has no attention hook)

Parameter names (`weight`, `bias`) match nn.Linear, so a state dict loads into either. The weight's
quantization metadata (bits, group, sym, scales and zeros when known) is kept for saving and packing.

Serialization: a transform or quantizer module is saved by (type name, `get_config()`) plus its
buffers in the state dict; classes register themselves with `@register_module` so `build_module` can
rebuild them on load without pickle.
"""
from __future__ import annotations

from typing import Callable, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.hooks import RemovableHandle

from .quantizer import ActQuantizer, QuantSpec, fake_quantize, weight_qparams

SERIALIZABLE: dict = {}


def register_module(cls):
    """Class decorator: let save/load rebuild `cls(**module.get_config())` by its class name."""
    SERIALIZABLE[cls.__name__] = cls
    return cls


register_module(ActQuantizer)


def module_spec(module: Optional[nn.Module]) -> Optional[dict]:
    """JSON description {"type", "config"} of a registered module (None for None)."""
    if module is None:
        return None
    name = type(module).__name__
    if name not in SERIALIZABLE or not hasattr(module, "get_config"):
        raise TypeError(f"{name} cannot be saved: decorate the class with dllmq.quant.qlinear.register_module "
                        "and give it a get_config() -> dict of its constructor arguments")
    return {"type": name, "config": module.get_config()}


def build_module(spec: Optional[dict]) -> Optional[nn.Module]:
    """Inverse of `module_spec` (buffers are filled afterwards by load_state_dict)."""
    if spec is None:
        return None
    if spec["type"] not in SERIALIZABLE:
        raise KeyError(f"module type {spec['type']!r} is not registered; known: {sorted(SERIALIZABLE)} "
                       "(import the module that defines it first)")
    return SERIALIZABLE[spec["type"]](**spec["config"])


class QuantLinear(nn.Module):
    """A Linear with a fake-quantized weight and optional input transform / activation / output quantizers."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *,
                 input_transform: Optional[nn.Module] = None, act_quantizer: Optional[nn.Module] = None,
                 output_quantizer: Optional[nn.Module] = None, device=None, dtype=None):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = nn.Parameter(torch.empty(out_features, in_features, device=device, dtype=dtype),
                                   requires_grad=False)
        self.bias = (nn.Parameter(torch.zeros(out_features, device=device, dtype=dtype), requires_grad=False)
                     if bias else None)
        self.input_transform = input_transform
        self.act_quantizer = act_quantizer
        self.output_quantizer = output_quantizer
        self.w_spec: Optional[QuantSpec] = None  # None: weight kept in full precision
        self.qmeta: dict = {}  # free-form: method, g_idx present, notes
        self.register_buffer("w_scale", None)  # (out, n_groups) when known
        self.register_buffer("w_zero", None)
        self.register_buffer("g_idx", None)  # (in,) column -> group, only when not arange(in)//group
        self._observers: dict = __import__("collections").OrderedDict()  # weak-referenceable (RemovableHandle)

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def from_linear(cls, linear: nn.Linear, w_spec: Optional[QuantSpec] = None, *, weight: Optional[torch.Tensor] = None,
                    scale: Optional[torch.Tensor] = None, zero: Optional[torch.Tensor] = None,
                    g_idx: Optional[torch.Tensor] = None, input_transform: Optional[nn.Module] = None,
                    act_quantizer: Optional[nn.Module] = None, output_quantizer: Optional[nn.Module] = None,
                    method: str = "") -> "QuantLinear":
        """Wrap `linear` (nn.Linear or QuantLinear).

        weight=None and w_spec given: RTN-quantize linear.weight now. weight given: it is the already
        fake-quantized weight (e.g. from GPTQ) and w_spec/scale/zero describe it. w_spec=None: FP weight."""
        if isinstance(linear, QuantLinear):
            input_transform = input_transform if input_transform is not None else linear.input_transform
            act_quantizer = act_quantizer if act_quantizer is not None else linear.act_quantizer
            output_quantizer = output_quantizer if output_quantizer is not None else linear.output_quantizer
        elif not isinstance(linear, nn.Linear):
            raise TypeError(f"linear must be nn.Linear or QuantLinear, got {type(linear).__name__}")
        w = linear.weight.data
        q = cls(linear.in_features, linear.out_features, bias=linear.bias is not None,
                input_transform=input_transform, act_quantizer=act_quantizer, output_quantizer=output_quantizer,
                device=w.device, dtype=w.dtype)
        if linear.bias is not None:
            q.bias.data.copy_(linear.bias.data)
        if weight is None and w_spec is not None:
            q.set_weight(fake_quantize(w, w_spec), w_spec, *weight_qparams(w, w_spec), method=method)
        elif weight is not None:
            q.set_weight(weight, w_spec, scale, zero, g_idx=g_idx, method=method)
        else:
            q.weight.data.copy_(w)
            if isinstance(linear, QuantLinear):
                q.set_weight(w, linear.w_spec, linear.w_scale, linear.w_zero, g_idx=linear.g_idx, **linear.qmeta)
        return q

    def set_weight(self, weight: torch.Tensor, w_spec: Optional[QuantSpec], scale: Optional[torch.Tensor] = None,
                   zero: Optional[torch.Tensor] = None, g_idx: Optional[torch.Tensor] = None, **meta) -> None:
        """Store a (fake-quantized) weight with its quantization metadata."""
        if tuple(weight.shape) != (self.out_features, self.in_features):
            raise ValueError(f"weight shape {tuple(weight.shape)} != ({self.out_features}, {self.in_features})")
        self.weight.data = weight.detach().to(device=self.weight.device, dtype=self.weight.dtype).contiguous()
        self.w_spec = w_spec
        self.w_scale = None if scale is None else scale.detach().float().to(self.weight.device)
        self.w_zero = None if zero is None else zero.detach().float().to(self.weight.device)
        self.g_idx = None if g_idx is None else g_idx.detach().long().to(self.weight.device)
        self.qmeta = {k: v for k, v in meta.items() if v not in ("", None)}

    # -- forward ------------------------------------------------------------------------------
    def add_input_observer(self, fn: Callable[[torch.Tensor], None]) -> RemovableHandle:
        """Call fn(x) with the input the weight sees (after the transform, before activation quantization)."""
        handle = RemovableHandle(self._observers)
        self._observers[handle.id] = fn
        return handle

    def transform_input(self, x: torch.Tensor) -> torch.Tensor:
        """x after the online transform (no activation quantization)."""
        return x if self.input_transform is None else self.input_transform(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.transform_input(x)
        for fn in list(self._observers.values()):
            fn(x)
        if self.act_quantizer is not None:
            x = self.act_quantizer(x)
        y = F.linear(x, self.weight, self.bias)
        if self.output_quantizer is not None:
            y = self.output_quantizer(y)
        return y

    # -- description / saving -----------------------------------------------------------------
    @property
    def w_bits(self) -> int:
        return 16 if self.w_spec is None else self.w_spec.bits

    @property
    def a_bits(self) -> int:
        return getattr(self.act_quantizer, "bits", 16) if self.act_quantizer is not None else 16

    def extra_repr(self) -> str:
        parts = [f"in_features={self.in_features}", f"out_features={self.out_features}",
                 f"bias={self.bias is not None}", f"w={'fp' if self.w_spec is None else self.w_spec.describe()}"]
        if self.qmeta.get("method"):
            parts.append(f"method={self.qmeta['method']}")
        return ", ".join(parts)

    def get_config(self) -> dict:
        """JSON metadata to rebuild this module on load (weights come from the state dict)."""
        return {
            "in_features": self.in_features, "out_features": self.out_features, "bias": self.bias is not None,
            "w_spec": None if self.w_spec is None else self.w_spec.to_dict(),
            "has_scale": self.w_scale is not None, "has_g_idx": self.g_idx is not None,
            "scale_shape": None if self.w_scale is None else list(self.w_scale.shape),
            "qmeta": self.qmeta,
            "input_transform": module_spec(self.input_transform),
            "act_quantizer": module_spec(self.act_quantizer),
            "output_quantizer": module_spec(self.output_quantizer),
        }

    @classmethod
    def from_config(cls, cfg: dict, device=None, dtype=None) -> "QuantLinear":
        """Empty QuantLinear shaped by `get_config()` output; fill it with load_state_dict."""
        q = cls(cfg["in_features"], cfg["out_features"], bias=cfg["bias"],
                input_transform=build_module(cfg["input_transform"]), act_quantizer=build_module(cfg["act_quantizer"]),
                output_quantizer=build_module(cfg["output_quantizer"]), device=device, dtype=dtype)
        q.w_spec = None if cfg["w_spec"] is None else QuantSpec(**cfg["w_spec"])
        q.qmeta = dict(cfg.get("qmeta", {}))
        if cfg.get("has_scale"):
            shape = cfg["scale_shape"]
            q.w_scale = torch.zeros(shape, device=device)
            q.w_zero = torch.zeros(shape, device=device)
        if cfg.get("has_g_idx"):
            q.g_idx = torch.zeros(cfg["in_features"], dtype=torch.long, device=device)
        return q


def quantized_linears(model: nn.Module) -> dict:
    """name -> QuantLinear for every QuantLinear in `model`."""
    return {n: m for n, m in model.named_modules() if isinstance(m, QuantLinear)}

