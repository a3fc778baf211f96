"""The demo grid (`make demo`): every method at every setting it runs at, on the tiny model, on a CPU.

Weight-only methods (GPTQ, AWQ) at W4A16 and W3A16, weight-activation methods (SmoothQuant, QuaRot,
DuQuant) at W8A8 and W4A4, RTN at all four; each evaluated on TinyBench (general: likelihood multiple
choice, math and code: generation), each recipe the paper preset fitted to the model (`Recipe.paper`).
`results_table` turns the stored records into the table of the README (accuracy per category, average,
drop vs FP and the paper's band); `dllmq.demo.run_demo` runs the grid and writes table and figures.
"""
from __future__ import annotations

from typing import Optional

import pandas as pd

from ..models import tiny_default
from ..quant import Recipe
from .sweep import grid

SETTINGS = ("w4a16g128", "w3a16g128", "w8a8", "w4a4")
METHODS = {"rtn": SETTINGS, "gptq": SETTINGS[:2], "awq": SETTINGS[:2], "smoothquant": SETTINGS[2:],
           "quarot": SETTINGS[2:], "duquant": SETTINGS[2:]}
TASKS = ("tinybench",)
CATEGORIES = ("general", "math", "code")


DESCRIPTION = "every method x setting on the tiny model, TinyBench (the `make demo` grid)"


def demo_recipes(model: str) -> list:
    """FP, then each method at each of its settings (recipes fitted to the model)."""
    return ["fp"] + [str(Recipe.paper(m, s, model=model)) for m, settings in METHODS.items() for s in settings]


def demo_cells(model: Optional[str] = None, reduced: bool = False) -> list:
    model = model or tiny_default()
    recipes = demo_recipes(model)
    if reduced:  # FP, one weight-only and one W-A recipe
        recipes = [recipes[0], str(Recipe.paper("gptq", "w4a16g128", model=model)),
                   str(Recipe.paper("duquant", "w4a4", model=model))]
    return grid([model], recipes, list(TASKS))


def results_table(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per recipe: accuracy (%) per category, their mean, drop vs FP (%) and the paper's band."""
    from ..paper.compare import recipe_row
    from ..paper.tables import band

    per_cat = frame.groupby(["recipe", "category"])["value"].mean().unstack("category") * 100
    per_cat = per_cat.reindex(columns=[c for c in CATEGORIES if c in per_cat.columns])
    per_cat["avg"] = per_cat.mean(axis=1)
    if "fp" not in per_cat.index:
        raise ValueError("the results hold no FP row; the demo grid always evaluates recipe 'fp'")
    fp_avg = per_cat.loc["fp", "avg"]
    per_cat["drop"] = (per_cat["avg"] / fp_avg - 1.0) * 100.0 if fp_avg > 0 else float("nan")
    per_cat.loc["fp", "drop"] = float("nan")
    per_cat["band"] = [band(d) for d in per_cat["drop"]]
    labels = [recipe_row(r) for r in per_cat.index]
    per_cat.insert(0, "setting", [s for s, _ in labels])
    per_cat.insert(0, "method", [m for _, m in labels])
    order = {r: i for i, r in enumerate(demo_recipes_order(per_cat.index))}
    per_cat = per_cat.sort_index(key=lambda idx: idx.map(order))
    return per_cat.reset_index()


def demo_recipes_order(recipes) -> list:
    method_rank = {m: i for i, m in enumerate(["fp", *METHODS])}
    return sorted(recipes, key=lambda r: (method_rank.get(r.split(":")[0], 99), r))


def to_markdown(table: pd.DataFrame) -> str:
    """A GitHub markdown table (no extra dependency)."""
    cols = ["method", "setting", *[c for c in CATEGORIES if c in table], "avg", "drop", "band", "recipe"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, row in table.iterrows():
        cells = []
        for c in cols:
            v = row[c]
            if c == "drop":
                cells.append("–" if pd.isna(v) else f"{v:+.1f}%")
            elif isinstance(v, float):
                cells.append(f"{v:.1f}")
            else:
                cells.append(str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


COMPUTE_KEYS = ("threads", "cpu", "cpu_capability", "torch")  # what a seeded demo number depends on


def compute_settings(records, cell_ids) -> list:
    """The distinct compute settings (threads, CPU, kernel family, torch) the given cells were run under:
    one entry for a table made in one run; more when a resumed store mixes machines or thread counts."""
    seen = []
    for record in records:
        if record.get("cell") in cell_ids:
            facts = {key: (record.get("versions") or {}).get(key) for key in COMPUTE_KEYS}
            if facts not in seen:
                seen.append(facts)
    return seen

