"""Checkers for notebook 10 (reproduce the paper's findings). Each returns a scored CheckResult (scoring.py)."""
from __future__ import annotations

import math

from .. import paper
from .scoring import scored


@scored("nb10_ex1", points=2)
def check_drop(student_drop) -> str:
    """Exercise 1: `student_drop(avg, fp_avg) -> float`, the relative change in percent (negative = worse)."""
    for avg, fp in [(65.3, 65.5), (66.0, 65.7), (41.1, 65.5), (0.0, 36.2), (45.7, 45.5)]:
        got, want = student_drop(avg, fp), (avg / fp - 1.0) * 100.0
        assert math.isclose(got, want, abs_tol=1e-9), (
            f"drop({avg}, {fp}) = {got}, expected {want:.4f}: the paper's drop is RELATIVE to the FP average, "
            "(avg / fp_avg - 1) * 100, not the difference in points")
    return "correct: e.g. Table 2's SmoothQuant W4A4 41.1 vs 65.5 is a 37.3% drop"


@scored("nb10_ex2", points=1)
def check_awq_misprint(recomputed_drop: float) -> str:
    """Exercise 2: recompute Table 1's LLaDA-8B-Instruct W4A16 AWQ drop from its five averaged scores."""
    row = paper.check(1).query("model == 'LLaDA-8B-Instruct' and method == 'AWQ' and setting == 'W4A16 g128' "
                               "and metric == 'general_drop'").iloc[0]
    assert abs(recomputed_drop - row.recomputed) < 0.05, (
        f"got {recomputed_drop:.2f}%, expected about {row.recomputed:.2f}%: average WinoGrande, PIQA, ARC-C, "
        "Hellaswag and MMLU (Table 1 leaves ARC-E out) for AWQ and for FP, then take the relative change")
    return (f"correct: {row.recomputed:.2f}% -- the paper prints down 0.1%, a misprint that `paper.check()` flags; "
            "AWQ W4 on Instruct is a moderate, not negligible, drop")


@scored("nb10_ex3", points=2)
def check_band(student_band) -> str:
    """Exercise 3: `student_band(drop_pct) -> str`, the paper's scale for a drop (negative = worse)."""
    for drop in (0.3, -0.2, -0.99, -1.0, -2.5, -4.0, -4.01, -37.3, 0.0):
        got, want = student_band(drop), paper.band(drop)
        assert got == want, (f"band({drop}) = {got!r}, expected {want!r}: a degradation below 1% is negligible, "
                             "1-4% moderate, above 4% significant (an improvement is negligible)")
    return "correct: these are the bands of Liu et al. 2025 that the paper uses"
