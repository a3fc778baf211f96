"""Notebook 07 (QuaRot): what a rotation does to one layer's activations and weights."""
from __future__ import annotations

import torch

from ..quant.hadamard import hadamard_matrix, random_orthogonal_matrix, random_signs


ROTATIONS = ("none", "hadamard", "random")


def rotate_view(x: torch.Tensor, w: torch.Tensor, kind: str = "hadamard", seed: int = 0) -> tuple:
    """(X Q, W Q): Q a random Hadamard D·H/√n, a random orthogonal matrix, or the identity ("none")."""
    if kind not in ROTATIONS:
        raise ValueError(f"kind={kind!r} is unknown; allowed: {ROTATIONS}")
    n = x.shape[-1]
    if kind == "none":
        return x, w
    Q = random_orthogonal_matrix(n, seed) if kind == "random" else random_signs(n, seed)[:, None] * hadamard_matrix(n)
    Q = Q.float()
    return x @ Q, w @ Q
