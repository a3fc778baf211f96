"""Checkers for notebook 05 (AWQ). Each returns a scored CheckResult (scoring.py)."""
from __future__ import annotations

import torch

from .scoring import scored


@scored("nb05_ex1", points=2)
def check_awq_scale(student_scale) -> str:
    """Exercise 1: `student_scale(x_mean, ratio) -> s`: s = x_mean^ratio (clamped >= 1e-4), then divided by
    sqrt(max(s) * min(s))."""
    g = torch.Generator().manual_seed(0)
    for _ in range(3):
        x_mean = torch.rand(32, generator=g) * 3 + 0.01
        x_mean[4] = 40.0
        x_mean[7] = 0.0  # a dead channel: 0 ** ratio = 0 without the clamp
        for ratio in (0.0, 0.25, 0.5, 0.95):
            s = student_scale(x_mean.clone(), ratio)
            raw = x_mean.pow(ratio).clamp(min=1e-4)
            want = raw / (raw.max() * raw.min()).sqrt()
            if not torch.allclose(s.float(), want, rtol=1e-5):
                if torch.allclose(s.float(), raw, rtol=1e-5):
                    raise AssertionError("almost: now normalise by sqrt(max(s) * min(s)) so scales straddle 1")
                raise AssertionError(f"wrong scales at ratio {ratio}: s = x_mean ** ratio, clamp(min=1e-4), "
                                     "then s / sqrt(s.max() * s.min())")
    return "correct: ratio 0 gives s = 1 (plain RTN), larger ratios protect the channels with large |x|"


@scored("nb05_ex2", points=2)
def check_fold(student_fold) -> str:
    """Exercise 2: `student_fold(norm_weight, W, s) -> (new_norm_weight, new_W)` folds s so that
    norm(x) @ W^T is unchanged: the norm output is divided by s, the weight columns multiplied by s."""
    g = torch.Generator().manual_seed(1)
    gamma = torch.rand(16, generator=g) + 0.5
    W = torch.randn(8, 16, generator=g)
    s = torch.rand(16, generator=g) + 0.5
    h = torch.randn(5, 16, generator=g)  # normalised hidden states before gamma
    new_gamma, new_W = student_fold(gamma.clone(), W.clone(), s.clone())
    assert tuple(new_W.shape) == (8, 16), "W keeps its shape [out, in]; scale its COLUMNS (input channels)"
    before = (h * gamma) @ W.T
    after = (h * new_gamma) @ new_W.T
    assert torch.allclose(after, before, atol=1e-5), (
        "the output changed: divide the norm weight by s and multiply W's columns by s (W * s, not W / s)")
    assert torch.allclose(new_W, W * s), "multiply each input column j of W by s_j (broadcast s over rows)"
    return "correct: the FP output is unchanged, only the rounding now favours the scaled-up channels"
