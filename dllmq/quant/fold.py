"""Exact weight rewrites shared by SmoothQuant, QuaRot and DuQuant: scale and rotate linears, fold norms.

Each rewrite leaves the full-precision function unchanged; together they move difficulty between
activations and weights before quantization. Conventions (a Linear computes y = x Wᵀ + b, W is [out, in]):

    input side   x -> x T          is cancelled by  W <- W T          (T orthogonal: T Tᵀ = I)
                 x -> x / s        is cancelled by  W <- W diag(s)    (SmoothQuant)
    output side  y -> y T          is obtained by   W <- Tᵀ W,  b <- b T
                 y -> y / s        is obtained by   W <- diag(1/s) W, b <- b / s
    RMSNorm γ    RMSNorm_γ(x) Wᵀ = RMSNorm_1(x) (W diag(γ))ᵀ, so γ folds into the linears that read it.

All arithmetic runs in float64 and is cast back once (QuaRot issue #8: rotating in bf16 can break a model).
"""
from __future__ import annotations

from typing import Callable, Iterable

import torch
import torch.nn as nn


def _rewrite(param: torch.Tensor, fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
    """param <- fn(param in float64), cast back to its dtype, in place."""
    with torch.no_grad():
        param.data = fn(param.data.to(torch.float64)).to(param.dtype)


def _as64(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return t.to(device=like.device, dtype=torch.float64)


def rotate_input(linear: nn.Module, T: torch.Tensor) -> None:
    """W <- W T: the linear now expects inputs x T (T: [in, in])."""
    _rewrite(linear.weight, lambda W: W @ _as64(T, W))


def rotate_output(linear: nn.Module, T: torch.Tensor) -> None:
    """W <- Tᵀ W, b <- b T: the linear now produces y T (T: [out, out])."""
    _rewrite(linear.weight, lambda W: _as64(T, W).T @ W)
    if getattr(linear, "bias", None) is not None:
        _rewrite(linear.bias, lambda b: b @ _as64(T, b))


def rotate_embedding(embed: nn.Module, T: torch.Tensor, chunk: int = 8192) -> None:
    """E <- E T row chunk by row chunk (a 126k-row vocabulary in float64 would need gigabytes at once)."""
    with torch.no_grad():
        E = embed.weight.data
        T64 = _as64(T, E)
        for i in range(0, E.shape[0], chunk):
            E[i:i + chunk] = (E[i:i + chunk].to(torch.float64) @ T64).to(E.dtype)


def scale_input(linear: nn.Module, s: torch.Tensor) -> None:
    """W <- W diag(s): the linear now expects inputs x / s."""
    _rewrite(linear.weight, lambda W: W * _as64(s, W)[None, :])


def scale_output(linear: nn.Module, s: torch.Tensor) -> None:
    """W <- diag(1/s) W, b <- b / s: the linear now produces y / s."""
    _rewrite(linear.weight, lambda W: W / _as64(s, W)[:, None])
    if getattr(linear, "bias", None) is not None:
        _rewrite(linear.bias, lambda b: b / _as64(s, b))


def scale_norm(norm: nn.Module, s: torch.Tensor) -> None:
    """γ <- γ / s: the norm now produces x / s (RMSNorm, no bias)."""
    _check_norm(norm)
    _rewrite(norm.weight, lambda g: g / _as64(s, g))


def _check_norm(norm: nn.Module) -> None:
    if getattr(norm, "weight", None) is None:
        raise TypeError(f"{type(norm).__name__} has no weight to fold")
    if getattr(norm, "bias", None) is not None:
        raise TypeError(f"{type(norm).__name__} has a bias; only RMSNorm-style norms are supported")


def fold_norm(norm: nn.Module, linears: Iterable[nn.Module]) -> None:
    """Fold RMSNorm γ into the linears reading it (W <- W diag(γ)) and set γ = 1."""
    _check_norm(norm)
    gamma = norm.weight.data.to(torch.float64).clone()
    for lin in linears:
        scale_input(lin, gamma)
    with torch.no_grad():
        norm.weight.data.fill_(1.0)


def untie_head(layout) -> nn.Module:
    """Give the LM head its own weight when it shares the embedding's (so the two can be rewritten apart)."""
    head, embed = layout.head, layout.embed
    if head is embed:
        raise ValueError("the model computes logits with the embedding itself; no separate head module to untie")
    if head.weight is embed.weight or head.weight.data_ptr() == embed.weight.data_ptr():
        head.weight = nn.Parameter(embed.weight.detach().clone(), requires_grad=False)
        cfg = getattr(layout.model, "config", None)
        if cfg is not None:
            cfg.tie_word_embeddings = False
            if hasattr(cfg, "weight_tying"):
                cfg.weight_tying = False
    return head


def fuse_norms(layout, include_head: bool = True) -> None:
    """QuaRot step 1: fold every RMSNorm γ into the linears it feeds; norms become weight-free (γ = 1).

    attn_norm -> q, k, v;  mlp_norm -> gate, up;  final_norm -> head (untied first)."""
    for b in layout.blocks:
        lin = b.linears
        fold_norm(b.attn_norm, [lin["q"], lin["k"], lin["v"]])
        fold_norm(b.mlp_norm, [lin["gate"], lin["up"]])
    if include_head:
        fold_norm(layout.final_norm, [untie_head(layout)])


def head_blocks(T: torch.Tensor, n_blocks: int) -> torch.Tensor:
    """Block-diagonal I_n ⊗ T (one copy of T per head)."""
    return torch.block_diag(*[T] * n_blocks)
