"""Checkers for notebook 11 (beyond the paper). Each returns a scored CheckResult (scoring.py)."""
from __future__ import annotations

from ..sweeps.sweep import Cell
from .scoring import scored


@scored("nb11_ex1", points=1)
def check_sweep_cells(cells, model: str, recipes: list, task: str) -> str:
    """Exercise 1: a sweep of `recipes` x remasking in {low_confidence, random} on `task` for `model`,
    built with `dllmq.sweeps.grid` (one variant dict per remasking strategy)."""
    cells = list(cells)
    assert all(isinstance(c, Cell) for c in cells), "build the cells with dllmq.sweeps.grid(...)"
    want = {(r, task, f"remasking={m}") for r in recipes for m in ("low_confidence", "random")}
    got = {(c.recipe, c.task, c.variant) for c in cells}
    assert {c.model for c in cells} == {model}, f"every cell must use model {model!r}"
    missing, extra = want - got, got - want
    assert not missing, (f"missing cells {sorted(missing)[:3]}...: pass variants=[{{'remasking': 'low_confidence'}}, "
                         "{'remasking': 'random'}] to grid()")
    assert not extra, f"unexpected cells {sorted(extra)[:3]}: only the given recipes, the one task, two variants"
    assert len(cells) == len(want), "a cell appears twice"
    return f"correct: {len(cells)} cells; run_sweep skips any that the store already holds"


@scored("nb11_ex2", points=1)
def check_memory_ratio(ratio: float, bits: int = 4, group_size: int = 128) -> str:
    """Exercise 2: the weight memory of packed int4 (g128, fp16 scales, 8-bit zeros) over FP32."""
    want = (bits / 8 + (2 + 1) / group_size) / 4  # bytes per weight: codes + a scale and a zero per group, vs 4
    assert abs(ratio - want) < 5e-4, (f"got {ratio:.4f}, expected about {want:.4f}: each weight costs {bits} bits = "
                                      f"{bits / 8} byte, plus a 2-byte scale and a 1-byte zero shared by {group_size} "
                                      "weights; FP32 costs 4 bytes")
    return f"correct: about {1 / want:.1f}x smaller than FP32 (and {2 / (bits / 8 + 3 / group_size):.1f}x vs BF16)"
