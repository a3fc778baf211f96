"""Checkers for notebook 07 (QuaRot). Each returns a scored CheckResult (scoring.py)."""
from __future__ import annotations

import math

import torch

from ..quant.hadamard import sylvester_hadamard
from .scoring import scored


@scored("nb07_ex1", points=2)
def check_sylvester(student_hadamard) -> str:
    """Exercise 1: `student_hadamard(n)` = the ±1 Sylvester matrix of order n (a power of two)."""
    for n in (1, 2, 4, 8, 32):
        H = torch.as_tensor(student_hadamard(n)).double()
        assert H.shape == (n, n), f"n={n}: expected shape ({n}, {n}), got {tuple(H.shape)}"
        assert torch.all(H.abs() == 1), f"n={n}: every entry must be +1 or -1 (not normalised)"
        assert torch.allclose(H @ H.T, n * torch.eye(n, dtype=torch.float64)), (
            f"n={n}: rows are not orthogonal (H Hᵀ must be n·I); build H_2n = [[H, H], [H, -H]]")
        assert torch.equal(H, sylvester_hadamard(n).double()), (
            f"n={n}: a Hadamard matrix, but not Sylvester's order: start from [[1]] and double with [[H, H], [H, -H]]")
    return "correct: H_{2n} = [[H, H], [H, -H]], so H Hᵀ = n I and H/√n is a rotation"


@scored("nb07_ex2", points=2)
def check_spread(student_spread) -> str:
    """Exercise 2: `student_spread(a, n)` = |entry| of H/√n applied to a one-hot vector a·e_j."""
    for a, n in ((100.0, 1024), (7.0, 16), (2500.0, 4096)):
        want = a / math.sqrt(n)
        got = float(student_spread(a, n))
        assert abs(got - want) < 1e-6 * max(1.0, want), (
            f"a={a}, n={n}: got {got}; each of the n entries of H/√n has magnitude 1/√n, so a·e_j becomes ±a/√n")
    return "correct: a massive value a is cut to a/√n on every channel (÷64 for n = 4096)"


@scored("nb07_ex3", points=2)
def check_rotate_linear(student_rotate) -> str:
    """Exercise 3: `student_rotate(W, Q) -> W2` such that (x Q) W2ᵀ = x Wᵀ for orthogonal Q."""
    g = torch.Generator().manual_seed(2)
    W, x = torch.randn(6, 8, generator=g, dtype=torch.float64), torch.randn(3, 8, generator=g, dtype=torch.float64)
    Q, _ = torch.linalg.qr(torch.randn(8, 8, generator=g, dtype=torch.float64))
    W2 = torch.as_tensor(student_rotate(W.clone(), Q.clone())).double()
    assert W2.shape == W.shape, f"W2 must keep W's shape {tuple(W.shape)}"
    assert torch.allclose((x @ Q) @ W2.T, x @ W.T, atol=1e-10), (
        "(x Q) W2ᵀ != x Wᵀ: with Q Qᵀ = I, choose W2 = W Q, so (x Q)(W Q)ᵀ = x Q Qᵀ Wᵀ")
    return "correct: W2 = W Q; the rotation is free at run time when Q is folded into the producer too"
