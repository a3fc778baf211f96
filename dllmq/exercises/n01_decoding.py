"""Checkers for notebook 01 (denoising decoding). Each returns a scored CheckResult (scoring.py)."""
from __future__ import annotations

import torch

from ..decoding import unmask_quota
from .scoring import scored


@scored("nb01_ex1", points=2)
def check_quota(student_quota) -> str:
    """Exercise 1: `student_quota(n_masked, steps) -> list[int]` must match LLaDA's per-step schedule."""
    for n, s in [(10, 4), (32, 8), (7, 7), (17, 5), (64, 3), (1, 1)]:
        got = list(student_quota(n, s))
        want = unmask_quota(n, s)
        assert len(got) == s, f"quota({n}, {s}) must have one entry per step ({s}), got {len(got)}"
        assert sum(got) == n, f"quota({n}, {s}) must unmask all {n} tokens, yours sums to {sum(got)}"
        assert got == want, (f"quota({n}, {s}) = {got}, expected {want}: every step gets n // steps, and the "
                             "FIRST n % steps steps get one extra")
    return "correct: the remainder goes to the earliest steps"


@scored("nb01_ex2", points=2)
def check_select(student_select) -> str:
    """Exercise 2: `student_select(confidence, is_masked, k) -> LongTensor of k positions` (one row)."""
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        n = int(torch.randint(4, 20, (), generator=g))
        conf = torch.rand(n, generator=g)
        masked = torch.rand(n, generator=g) < 0.6
        masked[0] = True
        k = int(torch.randint(1, int(masked.sum()) + 1, (), generator=g))
        got = sorted(int(i) for i in student_select(conf.clone(), masked.clone(), k))
        want = sorted(conf.masked_fill(~masked, -float("inf")).topk(k).indices.tolist())
        assert len(got) == k, f"select must return exactly k={k} positions, got {len(got)}"
        assert all(masked[i] for i in got), "a position that is already unmasked was selected: committed tokens never change"
        assert got == want, f"expected the {k} most confident MASKED positions {want}, got {got}"
    return "correct: the most confident masked positions are committed, the rest stay masked (remasked)"
