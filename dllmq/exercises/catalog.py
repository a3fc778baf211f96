"""The explicit table of assignments: notebook -> its checker module; `exercises()` lists what is graded.

Nothing registers itself: the exercises of a notebook are the `@scored` checkers found in the module
this table names, in file order.
"""
from __future__ import annotations

import importlib
from typing import Callable

from .scoring import Exercise

# notebook number -> (notebook file stem, checker module in dllmq.exercises)
NOTEBOOKS = {
    "01": ("01_denoising_decoding", "n01_decoding"),
    "02": ("02_activation_outliers", "n02_outliers"),
    "03": ("03_quantization_basics", "n03_quantization_basics"),
    "04": ("04_gptq", "n04_gptq"),
    "05": ("05_awq", "n05_awq"),
    "06": ("06_smoothquant", "n06_smoothquant"),
    "07": ("07_quarot", "n07_quarot"),
    "08": ("08_duquant", "n08_duquant"),
    "09": ("09_evaluating_dllms", "n09_evaluating_dllms"),
    "10": ("10_reproduce_findings", "n10_reproduce_findings"),
    "11": ("11_beyond_the_paper", "n11_beyond_the_paper"),
}


def checkers(notebook: str) -> list[Callable]:
    """The scored checkers of `notebook` ('01' ... '11'), in the order they are defined."""
    if notebook not in NOTEBOOKS:
        raise ValueError(f"notebook={notebook!r}: allowed values are {', '.join(NOTEBOOKS)}")
    module = importlib.import_module(f"{__package__}.{NOTEBOOKS[notebook][1]}")
    found = [f for f in vars(module).values() if callable(f) and isinstance(getattr(f, "exercise", None), Exercise)]
    return sorted(found, key=lambda f: int(f.exercise.exercise_id[7:]))


def exercises(notebook: str | None = None) -> list[Exercise]:
    """Every graded exercise (of one notebook, or of all), with its points."""
    books = [notebook] if notebook is not None else list(NOTEBOOKS)
    return [f.exercise for nb in books for f in checkers(nb)]


def nbgrader_meta(cell: dict) -> dict:
    """The nbgrader metadata of a notebook cell ({} when it has none)."""
    return cell.get("metadata", {}).get("nbgrader", {})


def notebook_of(name: str) -> str | None:
    """'03' for '03_quantization_basics.ipynb' (or any name starting with a known number), else None."""
    head = name.rsplit("/", 1)[-1][:2]
    return head if head in NOTEBOOKS else None
