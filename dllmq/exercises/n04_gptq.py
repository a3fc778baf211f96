"""Checkers for notebook 04 (GPTQ). Each returns a scored CheckResult (scoring.py)."""
from __future__ import annotations

import torch

from ..quant.gptq import damped_inverse_cholesky
from ..quant.quantizer import QuantSpec, fake_quantize
from .scoring import scored


@scored("nb04_ex1", points=2)
def check_hessian(student_hessian) -> str:
    """Exercise 1: `student_hessian(x) -> H` with x (tokens, in): H = 2/N X^T X (N = number of tokens)."""
    g = torch.Generator().manual_seed(0)
    for n, d in ((50, 8), (200, 16), (7, 32)):
        x = torch.randn(n, d, generator=g)
        H = student_hessian(x.clone())
        assert tuple(H.shape) == (d, d), f"H must be (in, in) = ({d}, {d}), got {tuple(H.shape)}"
        want = 2 * x.T @ x / n
        if not torch.allclose(H.float(), want, rtol=1e-4, atol=1e-5):
            ratio = (H.float().trace() / want.trace()).item()
            hint = (f"your H is {ratio:.3g}x the expected one: check the factor 2 and the division by N"
                    if torch.allclose(H.float() / ratio, want, rtol=1e-3, atol=1e-4)
                    else "H[i, j] = 2/N * sum over tokens of x_i * x_j, i.e. 2/N * x.T @ x")
            raise AssertionError(hint)
    return "correct: H is the (scaled) second moment of the layer's inputs"


@scored("nb04_ex2", points=2)
def check_column_step(student_step) -> str:
    """Exercise 2: `student_step(W, Hinv, i, spec) -> W` quantizes column i and spreads its error over the
    columns to its right: err = (w_i - q_i) / Hinv[i, i];  W[:, i:] -= err (outer) Hinv[i, i:].
    q_i = fake_quantize(W, spec)[:, i] (per-channel parameters of the whole weight)."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(256, 12, generator=g) @ (torch.eye(12) + 0.3 * torch.randn(12, 12, generator=g))
    Hinv, _, _ = damped_inverse_cholesky(2 * x.T @ x / 256, 0.01)
    spec = QuantSpec(bits=3)
    W = torch.randn(6, 12, generator=g)
    for i in (0, 4, 11):
        got = student_step(W.clone(), Hinv.clone(), i, spec)
        w = W[:, i]
        q = fake_quantize(W, spec)[:, i]
        err = (w - q) / Hinv[i, i]
        want = W.clone()
        want[:, i:] -= err.unsqueeze(1) * Hinv[i, i:].unsqueeze(0)
        assert torch.allclose(got[:, :i], W[:, :i]), "columns left of i are already quantized: do not touch them"
        assert torch.allclose(got[:, i], q, atol=1e-5), (
            "after the step, column i must equal its quantized value q_i (Hinv[i, i] * err = w_i - q_i)")
        assert torch.allclose(got, want, atol=1e-5), "the columns right of i get W[:, j] -= err * Hinv[i, j]"
    return "correct: column i is now quantized and the columns to its right compensate for its error"
