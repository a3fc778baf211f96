"""Sweep presets: named grids of cells, in one explicit table (`PRESETS`).

    table1 ... table5   exactly the rows of that table of the paper (FP + every method x setting, as
                        `Recipe.paper` configures them) x the table's tasks (lm-eval names, Table A1 settings);
                        with a tiny model the TinyBench analogue: the same methods and bit-widths, the recipe
                        fitted to the model (`Recipe.paper(..., model=...)`: group size, its own corpus as
                        calibration data)
    demo                the `make demo` grid (demo.py)
    steps_x_bits ...    the beyond-the-paper studies (studies.py)

Every preset evaluates its cells with the built-in `CellRunner`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..models import is_tiny, tiny_default
from ..paper import tables as paper_tables
from ..quant import Recipe
from . import demo, studies
from .sweep import grid

# the TinyBench analogue of each table: the same categories (general = likelihood MC; math, code = generation)
TINY_TABLE_TASKS = {1: ("tinybench_general",), 2: ("tinybench_general",), 3: ("tinybench_math", "tinybench_code"),
                    4: ("tinybench_math", "tinybench_code"), 5: ("tinybench_general",)}


def setting_string(label: str) -> str:
    """Paper label -> recipe setting: "W4A16 g128" -> "w4a16g128", "W8A8" -> "w8a8"."""
    return label.lower().replace(" ", "")


def paper_rows(table: int) -> list:
    """(method, setting) of every non-FP row of Table n, in printed order, without repeats."""
    rows = []
    for _, setting, method in paper_tables.table(table).index:
        if method != "FP" and (method.lower(), setting_string(setting)) not in rows:
            rows.append((method.lower(), setting_string(setting)))
    return rows


def paper_cells(table: int, model: str, reduced: bool = False) -> list:
    """Cells of Table n for `model` (tiny model: the TinyBench analogue).

    reduced=True keeps FP and the first row of each bit setting (CI / smoke runs)."""
    from ..eval.presets import family_of_name, table_tasks

    rows = paper_rows(table)
    if reduced:
        firsts = {}
        for method, setting in rows:
            firsts.setdefault(setting, (method, setting))
        rows = list(firsts.values())
    recipes = ["fp"] + [str(Recipe.paper(m, s, model=model)) for m, s in rows]
    if is_tiny(model):
        tasks = list(TINY_TABLE_TASKS[table])
    else:
        tasks = [t.lm_eval_task for t in table_tasks(table, family_of_name(model))]
    return grid([model], recipes, tasks)


@dataclass(frozen=True)
class Preset:
    """A named grid: `cells(model, reduced)` builds it for one model."""

    name: str
    description: str
    build: Callable  # (model: str, reduced: bool) -> list[Cell]

    def cells(self, model: str = "tiny", reduced: bool = False) -> list:
        if model == "tiny":
            model = tiny_default()  # "tiny-random" when the trained asset is missing
        return self.build(model, reduced)

    def runner(self, **kwargs):
        """The cell function that evaluates this preset's cells (CellRunner with `kwargs`)."""
        from .runner import CellRunner

        return CellRunner(**kwargs)


def _table(n: int) -> Preset:
    return Preset(f"table{n}", paper_tables.CAPTIONS[n], lambda model, reduced: paper_cells(n, model, reduced))


PRESETS: dict = {
    **{f"table{n}": _table(n) for n in paper_tables.TABLES},
    "demo": Preset("demo", demo.DESCRIPTION, demo.demo_cells),
    **{name: Preset(name, study.question, study.build) for name, study in studies.STUDIES.items()},
}


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        raise ValueError(f"preset={name!r} is unknown; allowed: {sorted(PRESETS)}")
    return PRESETS[name]
