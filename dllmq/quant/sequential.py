"""The layer-by-layer engine shared by every calibrated method (GPTQ, AWQ, and the W-A methods).

    1. capture the inputs of block 0: a Catcher replaces it, records (hidden states, extra args, kwargs)
       for each calibration batch and stops the forward pass (works for native LLaDA/Dream and HF Llama)
    2. for each block i (tqdm shows progress):
         move it to `device` (streaming from CPU when the model lives there)
         propagate="fp": compute its full-precision outputs first (AWQ)
         call process_block(ctx): the method observes inputs through hooks, quantizes, swaps modules
         propagate="quantized": compute the outputs of the processed block (GPTQ)
         the outputs become the inputs of block i + 1; the block goes back to its original device
Peak memory: one block plus the cached calibration activations. Hooks are removed even on error.

The callback gets a `BlockContext`: the block's Layout, the cached inputs and kwargs, `run()`,
`observe(roles, fn)` and helpers (`collect_hessians`, `collect_inputs`) so that any method, including
the rotation methods, builds on the same loop.
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Optional

import torch
import torch.nn as nn
from tqdm.auto import tqdm

from .qlinear import QuantLinear
from .report import QuantReport

PROPAGATIONS = ("quantized", "fp")


class _StopForward(Exception):
    """Raised by the Catcher once block 0's inputs are recorded."""


class Catcher(nn.Module):
    """Stands in for block 0: records its call (x, other args, kwargs) and stops the model's forward."""

    def __init__(self, block: nn.Module, store_device):
        super().__init__()
        self.block = block
        self.store_device = store_device
        self.inputs: list = []
        self.calls: list = []  # (args without x, kwargs without x)

    def __getattr__(self, name):  # HF models read attributes of their layers (e.g. attention_type)
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self._modules["block"], name)

    def forward(self, *args, **kwargs):
        if args:
            x, rest = args[0], args[1:]
        else:
            x, rest = kwargs.pop("hidden_states"), ()
        for key in ("past_key_value", "past_key_values"):  # never let a cache grow during calibration
            if key in kwargs:
                kwargs[key] = None
        if "use_cache" in kwargs:
            kwargs["use_cache"] = False
        self.inputs.append(x.detach().to(self.store_device))
        self.calls.append((rest, kwargs))
        raise _StopForward


def _move(obj, device):
    """Tensors (possibly nested in tuples/lists/dicts) moved to device."""
    if torch.is_tensor(obj):
        return obj.to(device)
    if isinstance(obj, tuple):
        return tuple(_move(o, device) for o in obj)
    if isinstance(obj, list):
        return [_move(o, device) for o in obj]
    if isinstance(obj, dict):
        return {k: _move(v, device) for k, v in obj.items()}
    return obj


def _module_device(module: nn.Module) -> torch.device:
    for p in module.parameters():
        return p.device
    return torch.device("cpu")


@contextlib.contextmanager
def _non_block_parts_on(model: nn.Module, blocks: nn.ModuleList, device):
    """Temporarily move every parameter/buffer outside `blocks` to `device` (embedding, rotary, norms)."""
    in_blocks = {id(t) for t in list(blocks.parameters()) + list(blocks.buffers())}
    moved = []
    try:
        for module in model.modules():
            for name, t in list(module._parameters.items()) + list(module._buffers.items()):
                if t is not None and id(t) not in in_blocks and t.device != torch.device(device):
                    moved.append((t, t.data.device))
                    t.data = t.data.to(device)
        yield
    finally:
        for t, dev in moved:
            t.data = t.data.to(dev)


@torch.no_grad()
def capture_block_inputs(model: nn.Module, layout, calib: torch.Tensor, batch_size: int = 8,
                         device=None, store_device=None) -> tuple[list, list]:
    """Inputs of block 0 for every calibration batch: (list of hidden states (B, T, d), list of (args, kwargs))."""
    if not torch.is_tensor(calib) or calib.dim() != 2:
        raise ValueError(f"calib must be a LongTensor (n_samples, seq_len), got "
                         f"{type(calib).__name__} {tuple(calib.shape) if torch.is_tensor(calib) else ''}")
    device = torch.device(device) if device is not None else _module_device(layout.embed)
    store_device = device if store_device is None else torch.device(store_device)
    blocks = layout.blocks_module
    block0 = blocks[0]
    catcher = Catcher(block0, store_device)
    blocks[0] = catcher
    extra = {"use_cache": False} if layout.family.name == "llama" else {}
    try:
        with _non_block_parts_on(model, blocks, device):
            for start in range(0, calib.shape[0], batch_size):
                batch = calib[start:start + batch_size].to(device)  # (B, T)
                try:
                    model(input_ids=batch, **extra)
                except _StopForward:
                    pass
    finally:
        blocks[0] = block0
    if len(catcher.inputs) != -(-calib.shape[0] // batch_size):
        raise RuntimeError("the Catcher did not see every calibration batch; is block 0 called by the model?")
    return catcher.inputs, catcher.calls


class HessianAccumulator:
    """Running mean of 2 x x^T over calibration *sequences* in float32 (IST gptq `add_batch`):
    H <- H n/(n+m) + (2/(n+m)) sum_tokens x x^T, for a batch of m sequences. Shape (in, in)."""

    def __init__(self, n_features: int, device):
        self.H = torch.zeros(n_features, n_features, device=device, dtype=torch.float32)
        self.n = 0
        self.tokens = 0

    @torch.no_grad()
    def add(self, x: torch.Tensor) -> None:
        m = x.shape[0] if x.dim() > 2 else 1  # sequences in this batch
        x = x.reshape(-1, x.shape[-1]).float()  # (tokens, in)
        self.H.mul_(self.n / (self.n + m))
        self.n += m
        self.tokens += x.shape[0]
        x = (2.0 / self.n) ** 0.5 * x
        self.H.addmm_(x.T, x)


@dataclass
class BlockContext:
    """Everything a method needs to process one block (passed to `process_block`)."""

    index: int
    layout: object
    inputs: list  # hidden states, one tensor (B, T, d) per calibration batch
    calls: list  # (args, kwargs) per batch, as captured at block 0
    device: torch.device
    report: QuantReport
    fp_outputs: Optional[list] = None  # set before process_block when propagate == "fp"
    state: dict = field(default_factory=dict)  # free space for methods

    @property
    def block(self):
        """The BlockLayout (roles -> modules) of this block."""
        return self.layout.blocks[self.index]

    @property
    def module(self) -> nn.Module:
        return self.layout.blocks[self.index].module

    def name_of(self, role: str) -> str:
        return self.block.name_of(role, self.layout.family.blocks)

    @torch.no_grad()
    def forward(self, x: torch.Tensor, i: int) -> torch.Tensor:
        """The block applied to one cached batch `x` with batch i's captured args/kwargs."""
        args, kwargs = self.calls[i]
        out = self.module(x.to(self.device), *_move(args, self.device), **_move(kwargs, self.device))
        return out[0] if isinstance(out, (tuple, list)) else out

    @torch.no_grad()
    def run(self, inputs: Optional[list] = None) -> list:
        """Block outputs for every cached batch (or for `inputs`), stored like the inputs."""
        inputs = self.inputs if inputs is None else inputs
        return [self.forward(x, i).to(x.device) for i, x in enumerate(inputs)]

    @contextlib.contextmanager
    def observe(self, roles: Iterable[str], fn: Callable[[str, torch.Tensor], None]):
        """Within the `with`, every input x reaching a linear of `roles` calls fn(role, x).
        For a QuantLinear, x is taken after its input transform. Hooks are removed on exit, even on error."""
        handles = []
        try:
            for role in roles:
                mod = self.block.get(role)
                if isinstance(mod, QuantLinear):
                    handles.append(mod.add_input_observer(lambda x, r=role: fn(r, x)))
                else:
                    handles.append(mod.register_forward_pre_hook(lambda m, args, r=role: fn(r, args[0])))
            yield
        finally:
            for h in handles:
                h.remove()

    def collect_hessians(self, roles: Iterable[str]) -> dict:
        """Run the block once and return role -> HessianAccumulator of that linear's inputs."""
        roles = list(roles)
        acc = {r: HessianAccumulator(self.block.get(r).in_features, self.device) for r in roles}
        with self.observe(roles, lambda r, x: acc[r].add(x)):
            self.run()
        return acc

    def collect_inputs(self, roles: Iterable[str], store_device=None) -> dict:
        """Run the block once and return role -> inputs of that linear, flattened to (tokens, in)."""
        roles = list(roles)
        store = self.device if store_device is None else torch.device(store_device)
        got = {r: [] for r in roles}
        with self.observe(roles, lambda r, x: got[r].append(x.detach().reshape(-1, x.shape[-1]).to(store))):
            self.run()
        return {r: torch.cat(v) for r, v in got.items()}


def batched_relative_error(ys: list, refs: list) -> float:
    """sum ||y - ref||^2 / sum ||ref||^2 over lists of batches."""
    num = sum((y.float() - r.float()).pow(2).sum(dtype=torch.float64).item() for y, r in zip(ys, refs))
    den = sum(r.float().pow(2).sum(dtype=torch.float64).item() for r in refs)
    return num / den if den > 0 else float("nan")


def run_sequential(model: nn.Module, layout, calib: torch.Tensor, process_block: Callable[[BlockContext], None],
                   *, propagate: str = "quantized", report: Optional[QuantReport] = None, device=None,
                   batch_size: int = 8, store_device=None, blocks: Optional[Iterable[int]] = None,
                   measure_block_error: bool = True, desc: str = "quantize") -> QuantReport:
    """Drive `process_block` over the blocks (see the module docstring). Returns the report.

    device: where blocks compute (default: where the model is). store_device: where cached activations
    live (default: device). blocks: indices to process (default all); earlier blocks are only propagated,
    later ones are not visited."""
    if propagate not in PROPAGATIONS:
        raise ValueError(f"propagate={propagate!r} is unknown; allowed: {PROPAGATIONS}")
    report = report if report is not None else QuantReport(recipe="", method="")
    device = torch.device(device) if device is not None else _module_device(layout.blocks_module)
    inputs, calls = capture_block_inputs(model, layout, calib, batch_size=batch_size, device=device,
                                         store_device=store_device)
    todo = set(range(len(layout.blocks))) if blocks is None else set(blocks)
    last = max(todo) if todo else -1  # blocks after the last processed one need no propagation
    for i in tqdm(range(last + 1), desc=desc, leave=False):
        block = layout.blocks[i].module
        home = _module_device(block)
        block.to(device)
        t0 = time.perf_counter()
        try:
            ctx = BlockContext(index=i, layout=layout, inputs=inputs, calls=calls, device=device, report=report)
            fp = ctx.run() if (propagate == "fp" or (measure_block_error and i in todo)) else None
            ctx.fp_outputs = fp
            if i in todo:
                process_block(ctx)
            if propagate == "fp":
                outputs = fp
            else:
                outputs = ctx.run() if i in todo or fp is None else fp
            if measure_block_error and i in todo:
                q = outputs if propagate == "quantized" else ctx.run()
                report.add_block(i, batched_relative_error(q, fp), time.perf_counter() - t0)
            elif i in todo:
                report.add_block(i, None, time.perf_counter() - t0)
        finally:
            block.to(home)
        inputs = outputs
    return report
