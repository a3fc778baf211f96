"""Checkers for notebook 03 (quantization basics). Each returns a scored CheckResult (scoring.py)."""
from __future__ import annotations

import torch

from ..quant.quantizer import QuantSpec, compute_qparams, fake_quantize
from .scoring import scored


@scored("nb03_ex1", points=2)
def check_asym_params(student_params) -> str:
    """Exercise 1: `student_params(x, bits) -> (scale, zero)` for one row x, the paper's Eq. 1."""
    g = torch.Generator().manual_seed(0)
    cases = [torch.tensor([-1.0, 0.0, 0.5, 2.0]), torch.randn(64, generator=g) * 0.02,
             torch.rand(16, generator=g) + 0.5, -torch.rand(16, generator=g) - 0.1]
    for x in cases:
        for bits in (2, 3, 4, 8):
            scale, zero = student_params(x.clone(), bits)
            qp = compute_qparams(x.view(1, -1), QuantSpec(bits=bits))
            want_s, want_z = qp.scale.item(), qp.zero.item()
            assert abs(float(scale) - want_s) <= 1e-6 * max(1.0, want_s), (
                f"scale at {bits} bits is {float(scale):.6g}, expected {want_s:.6g}: "
                f"s = (max(x) - min(x)) / (2^bits - 1)")
            assert float(zero) == want_z, (
                f"zero point at {bits} bits is {float(zero)}, expected {want_z}: z = -round(min(x) / s), "
                f"kept inside [0, 2^bits - 1]")
    return "correct: the grid spans [min, max] with 2^bits levels, z maps min(x) to level 0"


@scored("nb03_ex2", points=2)
def check_group_fake_quant(student_fq) -> str:
    """Exercise 2: `student_fq(w, bits, group_size)` = asymmetric fake quantization per group of columns."""
    g = torch.Generator().manual_seed(1)
    w = torch.randn(8, 64, generator=g)
    w[2, 5] = 12.0
    for bits, gs in ((4, 16), (3, 32), (2, 64), (8, 8)):
        got = student_fq(w.clone(), bits, gs)
        assert tuple(got.shape) == tuple(w.shape), f"keep the weight's shape {tuple(w.shape)}"
        want = fake_quantize(w, bits, granularity="group", group_size=gs)
        if not torch.allclose(got.float(), want, atol=1e-5):
            per_row = fake_quantize(w, bits, granularity="channel")
            hint = ("you used one scale per ROW; each row needs one scale per block of group_size columns: "
                    "reshape to (-1, group_size)") if torch.allclose(got.float(), per_row, atol=1e-5) else \
                "reshape w to (-1, group_size), quantize each row with its own min/max, reshape back"
            raise AssertionError(f"wrong values at {bits} bits, group {gs}: {hint}")
    return "correct: small groups adapt the scale to local ranges, so one outlier only hurts its own group"


@scored("nb03_ex3", points=1)
def check_outlier_answer(answer: str, sweep) -> str:
    """Exercise 3: which granularity keeps the other weights accurate when one outlier grows?"""
    last = sweep[sweep["outlier_x_max"] == sweep["outlier_x_max"].max()]
    best = last.loc[last["rel_error_others"].idxmin(), "granularity"]
    allowed = sorted(set(sweep["granularity"]))
    assert answer in allowed, f"answer with one of {allowed}"
    assert answer == best, (f"{answer!r} is not the lowest: look at the row with the largest outlier and compare "
                            f"'rel_error_others' across granularities")
    return f"correct: {best} — the outlier only stretches the scale of its own group"
