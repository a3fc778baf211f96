"""Checkers for notebook 08 (DuQuant). Each returns a scored CheckResult (scoring.py)."""
from __future__ import annotations

import torch

from ..quant.duquant import zigzag_permutation
from .scoring import scored


@scored("nb08_ex1", points=2)
def check_zigzag(student_zigzag) -> str:
    """Exercise 1: `student_zigzag(channel_absmax, block_size) -> perm` (DuQuant's zigzag permutation)."""
    g = torch.Generator().manual_seed(3)
    for C, b in ((8, 4), (32, 8), (64, 16)):
        m = torch.rand(C, generator=g) ** 3 * 50
        got = torch.as_tensor(student_zigzag(m.clone(), b)).long()
        want = zigzag_permutation(m, b)
        assert sorted(got.tolist()) == list(range(C)), "perm must contain every channel exactly once"
        for k in range(C // b):
            gb, wb = set(got[k * b:(k + 1) * b].tolist()), set(want[k * b:(k + 1) * b].tolist())
            assert gb == wb, (f"C={C}, b={b}: block {k} holds the wrong channels. Sort channels by max|x| "
                              "(largest first) and deal them to blocks 0, 1, ..., K-1, K-1, ..., 1, 0, 0, 1, ...")
        assert torch.equal(got, want), "right blocks, wrong order inside a block: sort each block by decreasing max|x|"
    return "correct: every block gets one of the largest channels, then one of the next, ... (balanced blocks)"


@scored("nb08_ex2", points=2)
def check_first_channel(student_channel) -> str:
    """Exercise 2: `student_channel(x, block_size)` = the channel (within a block) the first greedy step
    rotates with the paper's channel index: the column of the largest |x| in the [-1, b] view."""
    g = torch.Generator().manual_seed(4)
    for b in (4, 16):
        x = torch.randn(10, 4 * b, generator=g)
        x[7, 2 * b + 3] = -40.0
        got = int(student_channel(x.clone(), b))
        assert got == 3, (f"b={b}: got {got}. View x as (-1, {b}) (every block of every token is a row) and take "
                          "the COLUMN of the largest |value|; here the spike sits at channel 2·b + 3")
    return "correct: that channel is rotated onto the flat direction (1/√b, ..., 1/√b) first"


@scored("nb08_ex3", points=2)
def check_fold_transform(student_fold) -> str:
    """Exercise 3: `student_fold(W, T) -> W2` such that (x T) W2ᵀ = x Wᵀ for DuQuant's orthogonal T."""
    g = torch.Generator().manual_seed(5)
    W, x = torch.randn(6, 8, generator=g, dtype=torch.float64), torch.randn(3, 8, generator=g, dtype=torch.float64)
    Q, _ = torch.linalg.qr(torch.randn(4, 4, generator=g, dtype=torch.float64))
    perm = torch.randperm(8, generator=g)
    T = torch.block_diag(Q, Q)[:, perm]
    W2 = torch.as_tensor(student_fold(W.clone(), T.clone())).double()
    assert torch.allclose((x @ T) @ W2.T, x @ W.T, atol=1e-10), (
        "(x T) W2ᵀ != x Wᵀ: T is orthogonal (rotations and a permutation), so W2 = W T")
    return "correct: the inverse of the online transform lives in the weight, which is then quantized"
