"""Checkers for notebook 06 (SmoothQuant). Each returns a scored CheckResult (scoring.py)."""
from __future__ import annotations

import torch

from ..quant.smoothquant import smoothing_scales
from .scoring import scored


def _cases():
    g = torch.Generator().manual_seed(0)
    a = torch.rand(16, generator=g) * 5 + 0.1
    a[3] = 80.0  # an outlier channel
    return [(a, torch.randn(8, 16, generator=g), alpha) for alpha in (0.0, 0.5, 0.85, 1.0)]


@scored("nb06_ex1", points=2)
def check_smoothing_scales(student_scales) -> str:
    """Exercise 1: `student_scales(act_absmax, W, alpha)` = s_j = max|X_j|^α / max_i |W_ij|^(1−α)."""
    for a, W, alpha in _cases():
        got = torch.as_tensor(student_scales(a.clone(), W.clone(), alpha)).float()
        assert got.shape == a.shape, f"one scale per input channel: shape {tuple(a.shape)}, got {tuple(got.shape)}"
        want = smoothing_scales(a, [W], alpha)
        if not torch.allclose(got, want, rtol=1e-4, atol=1e-6):
            raise AssertionError(f"wrong scales at alpha={alpha}: s_j = a_j**alpha / w_j**(1 - alpha) with "
                                 "w_j = W.abs().amax(dim=0) (max over the OUTPUT rows, one value per input column)")
    return "correct: alpha = 1 moves all the range into the weights, alpha = 0 all of it into the activations"


@scored("nb06_ex2", points=2)
def check_fold(student_fold) -> str:
    """Exercise 2: `student_fold(gamma, W, s) -> (gamma2, W2)` so that RMSNorm_γ2(x) W2ᵀ = RMSNorm_γ(x) Wᵀ and the
    norm's output is divided by s."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(5, 16, generator=g)
    gamma, W, s = torch.rand(16, generator=g) + 0.5, torch.randn(8, 16, generator=g), torch.rand(16, generator=g) + 0.2
    rms = x / x.pow(2).mean(-1, keepdim=True).add(1e-6).sqrt()
    gamma2, W2 = student_fold(gamma.clone(), W.clone(), s.clone())
    assert torch.allclose(rms * gamma2, rms * gamma / s, rtol=1e-4), "the norm must now output X / s: γ2 = γ / s"
    assert torch.allclose((rms * gamma2) @ W2.T, (rms * gamma) @ W.T, rtol=1e-4, atol=1e-5), (
        "the product changed: the weight's input columns must be multiplied by s (W2 = W * s, broadcast over rows)")
    return "correct: Y = (X / s)(W diag(s))ᵀ, and the division costs nothing at run time (it lives in γ)"


@scored("nb06_ex3", points=1)
def check_best_alpha(answer: float, table) -> str:
    """Exercise 3: the α of `table` (alpha_sweep output) with the smallest output error."""
    want = float(table.loc[table["output_error"].idxmin(), "alpha"])
    assert abs(float(answer) - want) < 1e-9, (f"alpha={answer} is not the best one in the table: look for the "
                                              "row with the smallest 'output_error' (not act_error)")
    return f"correct: alpha = {want:.2f} balances activation and weight error for this layer"
