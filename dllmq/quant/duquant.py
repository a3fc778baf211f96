"""DuQuant: distributing outliers via dual transformation (Lin et al., arXiv 2406.01721).

Each linear's input X (tokens × C) gets an online orthogonal transform T; its inverse is folded into the
weight, so X Wᵀ = (X T)(W T)ᵀ exactly in full precision:

    X  ->  (X / s) · (I ⊗ R₁) · P · (I ⊗ R₂)        W  ->  (W diag(s)) · (I ⊗ R₁) · P · (I ⊗ R₂)

    s       SmoothQuant scales s_j = max|X_j|^α / max|W_j|^(1−α) (α = 0.5 in the dLLM paper, 0.6 in
            DuQuant's), folded into the preceding norm or linear, by the rule of knob `smoothing`
            (smoothquant.RULES; default "qdlm", the reference code's rule; "none" skips it)
    R₁, R₂  block rotations, one b×b matrix (b = 128) shared by all C/b blocks, each built greedily:
            up to N = 256 steps; step t takes one base rotation R₀ whose row 0 is flat, swaps coordinate 0
            with the channel d holding the largest |x| (R = E_d R₀ E_d) and rotates; the prefix of steps with
            the smallest peak (max − min) is kept. Base (knob `rotation_base`):
              "givens"  the paper's Eq. 2 and the reference code (`get_rot.py` + `utils.get_rot`):
                        R₀ = G · diag(1, Q'), G a chain of Givens rotations whose row 0 is 1/√b·1, Q' random
                        orthogonal on the other b−1 columns (so the outlier keeps 1/√b on column 0 and is
                        spread randomly, not evenly, over the others)
              "flat"    R₀ = diag(1, Q') · House: row 0 is exactly 1/√b·1 (the outlier is spread evenly);
                        dllmq's earlier construction
    P       zigzag permutation: channels sorted by max|x| are dealt to the C/b blocks 0,1,..,K−1,K−1,..,0,...
            so every block gets a similar share of the outliers before the second rotation

Then weights are RTN-quantized per output channel (asymmetric, clip 0.8) and activations per token
(asymmetric, clip 0.9); the attention-matmul inputs Q, K (after a head-dim Hadamard) and V are quantized
at the activation bit-width. Reference behaviours, each behind a knob:
    greedy_index  "row": the reference code picks the *row* of the [−1, b] view modulo b as the
                  channel to rotate; "channel": the paper's channel index (default here; the preset's
                  variant="code" uses "row")
    calib_input   "mean": rotations are calibrated on the mean of the calibration sequences (one
                  [T, C] sequence propagated through the quantized blocks, as the reference code);
                  "all": on every calibration token
"""
from __future__ import annotations

import contextlib
import copy
import math
import time
from functools import lru_cache
from typing import Optional

import torch
import torch.nn as nn
from tqdm.auto import tqdm

from ..models.layout import ROLE_GROUPS
from .act_stats import collect_input_absmax
from .qlinear import register_module
from .report import QuantReport, relative_error_on_inputs
from .sequential import BlockContext, batched_relative_error, capture_block_inputs, run_sequential
from .smoothquant import RULES, smooth_pair
from .wa import install_attention_quantizers, rtn_linear

PROPAGATE = "quantized"  # only the calibration stream passes through the quantized blocks
GREEDY_INDEX = ("row", "channel")
CALIB_INPUTS = ("mean", "all")
ROTATION_BASES = ("givens", "flat")
SMOOTHINGS = tuple(sorted(RULES)) + ("none",)
V_CLIP = 1.0  # the reference quantizes V without clipping (its Q and K quantizers take the activation clip)
# DuQuant's defaults (the dLLM paper's scripts): smoothing α 0.5 by QDLM's rule, rotation blocks of 128 channels,
# 256 greedy steps on the paper's Givens base, one zigzag permutation; the greedy rotation picks by channel;
# calibration inputs averaged; rotation_seed 2.
KNOBS = dict(alpha=0.5, smoothing="qdlm", block_size=128, rotation_steps=256, permutation_times=1,
             greedy_index="channel", rotation_base="givens", calib_input="mean", max_calib_tokens=65536,
             rotation_seed=2)


# ----------------------------------------------------------------------------- the greedy rotation


def flat_rotation(b: int, generator: torch.Generator) -> torch.Tensor:
    """Random orthogonal b×b matrix whose row 0 is the flat vector 1/√b (e₀ R = 1/√b · 1).

    A Householder reflection maps e₀ onto the flat vector; a random rotation of the other b−1 coordinates
    (QR of a Gaussian) makes the remaining rows random: R = diag(1, Q) · (I − 2 v vᵀ / vᵀv), v = e₀ − u."""
    u = torch.full((b,), 1 / math.sqrt(b), dtype=torch.float64)
    v = -u
    v[0] += 1.0
    house = torch.eye(b, dtype=torch.float64)
    if v.norm() > 1e-12:
        house -= 2 * torch.outer(v, v) / (v @ v)
    Q, Rr = torch.linalg.qr(torch.randn(b - 1, b - 1, generator=generator, dtype=torch.float64))
    Q = Q * torch.sign(torch.diagonal(Rr))[None, :]
    D = torch.eye(b, dtype=torch.float64)
    D[1:, 1:] = Q
    return D @ house


def givens_chain(b: int) -> torch.Tensor:
    """G (b×b, float64, orthogonal) with row 0 = 1/√b·1: Givens rotations of the coordinate pairs (i, i+1),
    i = 0..b−2, with cos = 1/√(i+2), applied one after the other (G ← G_i G), then coordinates 0 and b−1
    swapped in rows and columns (DuQuant's `get_rot.py`)."""
    return _givens_chain(b).clone()


@lru_cache(maxsize=16)
def _givens_chain(b: int) -> torch.Tensor:
    G = torch.eye(b, dtype=torch.float64)
    for i in range(b - 1):
        c, s = 1 / math.sqrt(i + 2), math.sqrt(i + 1) / math.sqrt(i + 2)
        top, bottom = G[i].clone(), G[i + 1].clone()
        G[i], G[i + 1] = c * top - s * bottom, s * top + c * bottom
    return swap_to(G, b - 1)


def givens_rotation(b: int, generator: torch.Generator) -> torch.Tensor:
    """The paper's base rotation R̃·diag(1, Q'): `givens_chain(b)` times a random rotation of coordinates 1..b−1
    (QR of a Gaussian). Row 0 keeps 1/√b on column 0; the rest of it is spread randomly."""
    Q, Rr = torch.linalg.qr(torch.randn(b - 1, b - 1, generator=generator, dtype=torch.float64))
    Q = Q * torch.sign(torch.diagonal(Rr))[None, :]
    D = torch.eye(b, dtype=torch.float64)
    D[1:, 1:] = Q
    return givens_chain(b) @ D


def base_rotation(b: int, base, generator: torch.Generator) -> torch.Tensor:
    """R₀ for the greedy search: "givens" (paper, reference code), "flat", or an explicit b×b tensor."""
    if torch.is_tensor(base):
        if tuple(base.shape) != (b, b):
            raise ValueError(f"base rotation has shape {tuple(base.shape)}, needs ({b}, {b})")
        return base.to(torch.float64)
    if base == "givens":
        return givens_rotation(b, generator)
    if base == "flat":
        return flat_rotation(b, generator)
    raise ValueError(f"rotation_base={base!r} is unknown; allowed: {ROTATION_BASES}")


def swap_to(R: torch.Tensor, j: int) -> torch.Tensor:
    """P R P with P swapping coordinates 0 and j: row j is now R's row 0 (channel j is spread by it)."""
    idx = torch.arange(R.shape[0])
    idx[0], idx[j] = j, 0
    return R[idx][:, idx]


def _peak(x: torch.Tensor) -> float:
    lo, hi = torch.aminmax(x)
    return float(hi - lo)


@contextlib.contextmanager
def _one_cpu_thread(t: torch.Tensor):
    """Small CPU tensors: run the hundreds of tiny greedy steps on one thread (thread sync costs more than
    the arithmetic, badly so on a shared machine). The previous thread count is restored."""
    n = torch.get_num_threads()
    small = t.device.type == "cpu" and t.numel() < 2 ** 20
    if small:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if small:
            torch.set_num_threads(n)


def greedy_rotation(x: torch.Tensor, block_size: int, steps: int = 256, index: str = "channel",
                    seed: int = 0, return_peaks: bool = False, base="givens"):
    """R (b×b, float64) from activations x (..., C), C a multiple of b, all blocks sharing one R.

    One base rotation R₀ is drawn (`base_rotation`; as the reference code does per call). Step t: find the
    largest |value| of the current [−1, b] view, rotate with R₀ re-indexed so that its channel takes row 0,
    record the peak (max − min). Returns the product of the best prefix (identity if none helps), and with
    return_peaks=True also the peak before and after every step (steps + 1 values)."""
    if index not in GREEDY_INDEX:
        raise ValueError(f"greedy_index={index!r} is unknown; allowed: {GREEDY_INDEX}")
    b = block_size
    if x.shape[-1] % b:
        raise ValueError(f"block_size={b} must divide the channel count {x.shape[-1]}")
    X = x.detach().reshape(-1, b).to(torch.float64)  # (tokens · C/b, b): every block is a row
    R0 = base_rotation(b, base, torch.Generator().manual_seed(seed)).to(X.device)
    idx = torch.arange(b, device=X.device).repeat(b, 1)  # (b, b): row j = identity order with 0 <-> j
    idx[:, 0] = torch.arange(b, device=X.device)
    idx[torch.arange(b), torch.arange(b)] = 0
    Rs = R0[idx[:, :, None], idx[:, None, :]]  # (b, b, b): Rs[j] = swap_to(R0, j), all at once
    peaks, chosen = [_peak(X)], []
    with _one_cpu_thread(X):
        for _ in range(steps):
            r, c = divmod(int(X.abs().argmax()), b)
            j = c if index == "channel" else r % b
            chosen.append(j)
            X = X @ Rs[j]
            peaks.append(_peak(X))
    keep = min(range(len(peaks)), key=peaks.__getitem__)  # best prefix length (first minimum)
    R = torch.eye(b, dtype=torch.float64, device=X.device)
    for j in chosen[:keep]:
        R = R @ Rs[j]
    return (R.cpu(), peaks) if return_peaks else R.cpu()


def zigzag_permutation(channel_absmax: torch.Tensor, block_size: int) -> torch.Tensor:
    """perm (C,) such that x[..., perm] deals channels sorted by max|x| to K = C/b blocks in zigzag order
    (0, 1, ..., K−1, K−1, ..., 0, 0, 1, ...), each block sorted by decreasing max|x|."""
    C = channel_absmax.numel()
    K = C // block_size
    order = torch.argsort(channel_absmax.float(), descending=True, stable=True)
    blocks: list = [[] for _ in range(K)]
    for rank, ch in enumerate(order.tolist()):
        pos = rank % (2 * K)
        blocks[pos if pos < K else 2 * K - 1 - pos].append(ch)
    return torch.tensor([ch for blk in blocks for ch in blk], dtype=torch.long)


# ----------------------------------------------------------------------------- the online transform


@register_module
class DuQuantTransform(nn.Module):
    """x ↦ ((x · (I ⊗ R₁))[..., perm]) · (I ⊗ R₂) over the last dim (C channels, blocks of b).

    Orthogonal, so folding it into the weight (W ↦ W T, computed by applying this module to W's rows)
    keeps the linear exact. Buffers hold R₁, R₂ (b×b) and perm (C,)."""

    def __init__(self, dim: int, block_size: int):
        super().__init__()
        if dim % block_size:
            raise ValueError(f"block_size={block_size} must divide dim={dim}")
        self.dim, self.block_size = int(dim), int(block_size)
        self.register_buffer("R1", torch.eye(block_size))
        self.register_buffer("perm", torch.arange(dim))
        self.register_buffer("R2", torch.eye(block_size))

    def get_config(self) -> dict:
        return dict(dim=self.dim, block_size=self.block_size)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, block_size={self.block_size}"

    def _blocks(self, x: torch.Tensor, R: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        xb = x.reshape(*shape[:-1], self.dim // self.block_size, self.block_size)  # (..., C/b, b)
        return (xb @ R.to(x.dtype)).reshape(shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """float32 math (float64 inputs stay float64, for folding into weights)."""
        dtype = x.dtype
        y = x if dtype == torch.float64 else x.float()
        y = self._blocks(y, self.R1)
        y = y[..., self.perm]
        y = self._blocks(y, self.R2)
        return y.to(dtype)

    def matrix(self) -> torch.Tensor:
        """Dense T (C×C, float64) with forward(x) = x @ T."""
        return self.forward(torch.eye(self.dim, dtype=torch.float64))


def calibrate_transform(x: torch.Tensor, block_size: int, steps: int = 256, index: str = "channel",
                        permutation_times: int = 1, seed: int = 0, base="givens") -> DuQuantTransform:
    """Fit R₁, P, R₂ on activations x (..., C) (already smoothed): rotation → zigzag → rotation."""
    if permutation_times not in (0, 1):
        raise ValueError(f"permutation_times={permutation_times!r}: supported 0 (rotation only) or 1")
    C = x.shape[-1]
    t = DuQuantTransform(C, block_size)
    X = x.detach().reshape(-1, C).to(torch.float64)
    t.R1 = greedy_rotation(X, block_size, steps, index, seed, base=base).float()
    if permutation_times == 1:
        X = t._blocks(X, t.R1.double())
        t.perm = zigzag_permutation(X.abs().amax(dim=0), block_size)
        X = X[:, t.perm]
        t.R2 = greedy_rotation(X, block_size, steps, index, seed + 1, base=base).float()
    return t


# ----------------------------------------------------------------------------- the method


def _block_size(requested: int, dim: int, where: str, report: QuantReport) -> int:
    """The rotation block for a linear input of `dim` channels: must divide it; capped at dim (reported)."""
    if requested >= dim:
        if requested > dim:
            report.add_event(f"{where}: block_size={requested} > {dim} channels; using {dim} (one block)")
        return dim
    if dim % requested:
        raise ValueError(f"knob block_size={requested} must divide the input size {dim} of {where}; "
                         f"pick a divisor of every linear's in_features (e.g. 64 for SmolLM2, 16 for a tiny model)")
    return requested


def _site_inputs(ctx, role: str, max_tokens: int) -> torch.Tensor:
    """Inputs (tokens, C) reaching `role` (after any transform it already has), strided to <= max_tokens."""
    total = sum(x.shape[0] * x.shape[1] for x in ctx.inputs)
    stride = max(1, -(-total // max_tokens)) if max_tokens > 0 else 1
    got = []
    with ctx.observe([role], lambda r, x: got.append(x.detach().reshape(-1, x.shape[-1])[::stride])):
        ctx.run()
    return torch.cat(got)


def process_block(ctx, recipe, stats: dict, opts: dict, quantize: bool = True) -> None:
    """One block: smooth (4 pairs), then per input site in data-flow order calibrate T, fold, quantize."""
    layout, b, report = ctx.layout, ctx.block, ctx.report
    # 1. SmoothQuant-style scales s = max|X|^α / max|W|^(1−α), folded into norms / previous linears.
    if opts["smoothing"] != "none":
        for prev, nexts in RULES[opts["smoothing"]].pairs:
            smooth_pair(b, prev, nexts, stats[(b.index, nexts[0])], opts["alpha"], layout, opts["smoothing"])
    spec = recipe.weight_spec() if quantize else None
    for site, roles in enumerate(ROLE_GROUPS):
        t0 = time.perf_counter()
        # 2. Calibrate rotation → zigzag permutation → rotation on the inputs this site sees now.
        x = _site_inputs(ctx, roles[0], opts["max_calib_tokens"])
        bs = _block_size(opts["block_size"], x.shape[-1], ctx.name_of(roles[0]), report)
        t = calibrate_transform(x, bs, opts["rotation_steps"], opts["greedy_index"], opts["permutation_times"],
                                seed=opts["rotation_seed"] + 1000 * b.index + 10 * site,
                                base=opts["rotation_base"]).to(x.device)
        xt = t(x)
        for role in roles:
            # 3. Fold T into W (W <- W T, rows through the transform in float64) and quantize it.
            lin = b.get(role)
            lin.weight.data = t(lin.weight.data.double()).to(lin.weight.dtype)
            w_fp = lin.weight.data.clone()
            # each linear owns a copy of its site's transform (a shared module would not survive save/load)
            q = rtn_linear(lin, spec, "duquant", input_transform=copy.deepcopy(t),
                           act_quantizer=recipe.act_quantizer() if quantize else None)
            b.set(role, q)
            report.add_layer(b.index, role, ctx.name_of(role), relative_error_on_inputs(w_fp, q.weight, xt),
                             time.perf_counter() - t0, recipe.w_bits if quantize else 16,
                             notes=f"block={bs}")
        if roles[0] == "q" and quantize:
            # 4. Q/K (after a head-dim Hadamard, clipped like the activations) and V (not clipped) at their bits.
            how = install_attention_quantizers(layout, recipe.q_bits, recipe.kv_bits, sym=recipe.a_sym,
                                               clip_ratio=recipe.a_clip, rotate_qk=True, blocks=[b.index],
                                               v_clip_ratio=V_CLIP)
            report.extra["attention_inputs"] = how


def _first_sample(obj, batch: int):
    """Captured block args/kwargs reduced to batch size 1 (tensors whose dim 0 is the batch)."""
    if torch.is_tensor(obj):
        return obj[:1] if obj.dim() > 0 and obj.shape[0] == batch and batch > 1 else obj
    if isinstance(obj, (tuple, list)):
        return type(obj)(_first_sample(o, batch) for o in obj)
    if isinstance(obj, dict):
        return {k: _first_sample(v, batch) for k, v in obj.items()}
    return obj


@torch.no_grad()
def _run_mean(model, layout, calib, process, report: QuantReport, device, batch_size: int) -> None:
    """The reference flow: the mean calibration sequence (1, T, d) alone goes through the blocks."""
    inputs, calls = capture_block_inputs(model, layout, calib, batch_size=batch_size, device=device)
    B = inputs[0].shape[0]
    x = torch.cat(inputs).mean(dim=0, keepdim=True)  # (1, T, d): mean over the calibration sequences
    args, kwargs = calls[0]
    inputs, calls = [x], [(_first_sample(args, B), _first_sample(kwargs, B))]
    dev = torch.device(device) if device is not None else x.device
    for i in tqdm(range(len(layout.blocks)), desc="duquant", leave=False):
        block = layout.blocks[i].module
        home = next(block.parameters()).device
        block.to(dev)
        t0 = time.perf_counter()
        try:
            ctx = BlockContext(index=i, layout=layout, inputs=inputs, calls=calls, device=dev, report=report)
            fp = ctx.run()
            process(ctx)
            inputs = ctx.run()
            report.add_block(i, batched_relative_error(inputs, fp), time.perf_counter() - t0)
        finally:
            block.to(home)


def _options(recipe) -> dict:
    opts = {name: recipe.knob(name, default) for name, default in KNOBS.items()}
    if opts["greedy_index"] not in GREEDY_INDEX:
        raise ValueError(f"knob greedy_index={opts['greedy_index']!r} is unknown; allowed: {GREEDY_INDEX}")
    if opts["rotation_base"] not in ROTATION_BASES:
        raise ValueError(f"knob rotation_base={opts['rotation_base']!r} is unknown; allowed: {ROTATION_BASES}")
    if opts["smoothing"] not in SMOOTHINGS:
        raise ValueError(f"knob smoothing={opts['smoothing']!r} is unknown; allowed: {SMOOTHINGS}")
    if opts["calib_input"] not in CALIB_INPUTS:
        raise ValueError(f"knob calib_input={opts['calib_input']!r} is unknown; allowed: {CALIB_INPUTS}")
    if opts["rotation_steps"] < 0:
        raise ValueError(f"knob rotation_steps={opts['rotation_steps']} must be >= 0")
    return opts


@torch.no_grad()
def transform_model(model, layout, recipe, calib, quantize: bool = True, device=None,
                    batch_size: int = 8, report: Optional[QuantReport] = None) -> QuantReport:
    """Steps 1-4 over every block. quantize=False installs the transforms only (full precision, exact)."""
    report = report if report is not None else QuantReport(recipe=str(recipe), method="duquant")
    opts = _options(recipe)
    # 0. max|X_j| of every input site on the full-precision model (DuQuant's act_scales pass).
    stats = collect_input_absmax(model, layout, calib, roles=("q", "o", "gate", "down"), batch_size=batch_size)
    process = lambda ctx: process_block(ctx, recipe, stats, opts, quantize)  # noqa: E731
    if opts["calib_input"] == "mean":
        _run_mean(model, layout, calib, process, report, device, batch_size)
    else:
        run_sequential(model, layout, calib, process, propagate="quantized", report=report, device=device,
                       batch_size=batch_size, desc="duquant")
    report.extra["duquant"] = {k: opts[k] for k in ("alpha", "smoothing", "block_size", "rotation_steps",
                                                    "greedy_index", "rotation_base", "calib_input",
                                                    "permutation_times")}
    return report


def apply(model, layout, recipe, calib, device=None, batch_size: int = 8) -> QuantReport:
    """DuQuant in place (smoothing, rotation, permutation, rotation; RTN weights; per-token activations)."""
    t0 = time.perf_counter()
    report = transform_model(model, layout, recipe, calib, quantize=True, device=device, batch_size=batch_size)
    if report.extra.get("attention_inputs") == "projection-outputs":
        report.add_event("attention inputs: Llama family has no attention hook; q/k/v projection outputs are "
                         "quantized instead (before RoPE, no head-dim Hadamard)")
    report.total_time_s = time.perf_counter() - t0
    return report
