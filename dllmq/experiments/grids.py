"""Sweep presets: named grids of cells, each with the runner that evaluates them.

Paper presets ("table1" ... "table5") hold exactly the rows of that table (FP + every method x
setting, as `Recipe.paper` configures them) x the table's tasks (lm-eval names, Table A1 settings).
With a tiny model they become the TinyBench analogue: the same methods and bit-widths, a group size
that divides the tiny model's widths, the tiny model's own corpus as calibration data.
Study presets ("steps_x_bits", ...) are the beyond-the-paper experiments; see `studies.py`.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable, Optional

from .sweep import grid

TINY_MODELS = ("tiny", "tiny-random", "tiny-random-llada", "tiny-random-dream", "tiny-random-llama")
TINY_CALIB = {"n_samples": 16, "seq_len": 128, "seed": 0}  # 2048 tokens: plenty for widths <= 256
# the TinyBench analogue of each table: the same categories (general = likelihood MC; math, code = generation)
TINY_TABLE_TASKS = {1: ("tinybench_general",), 2: ("tinybench_general",), 3: ("tinybench_math", "tinybench_code"),
                    4: ("tinybench_math", "tinybench_code"), 5: ("tinybench_general",)}
GROUP_CANDIDATES = (128, 64, 32, 16)
# likelihood on a CPU: fewer Monte-Carlo samples than the paper's 128 (notebook 09 measures the variance)
TINY_DECODING = {"mc_samples": 32, "batch_size": 32}


TINY_MAX_WIDTH = 1024  # a local model this narrow gets the TinyBench analogue (e.g. your own tiny dLLM)


def is_tiny(model: str) -> bool:
    """A kit tiny model, or a local directory holding a small model (hidden size <= TINY_MAX_WIDTH)."""
    if model in TINY_MODELS:
        return True
    config = Path(model) / "config.json"
    if not config.is_file():
        return False
    spec = json.loads(config.read_text())
    width = spec.get("d_model") or spec.get("hidden_size") or 10**9
    return width <= TINY_MAX_WIDTH


def tiny_default() -> str:
    """"tiny" when the trained asset ships with the package, else "tiny-random"."""
    from ..models.loading import TINY_ASSET_DIR

    return "tiny" if (TINY_ASSET_DIR / "config.json").exists() else "tiny-random"


@lru_cache(maxsize=8)
def suitable_group(model: str) -> int:
    """The largest of 128/64/32/16 dividing every linear's in_features (128 for the paper's models)."""
    if not is_tiny(model):
        return 128
    from ..models import get_layout, load_model

    net, _ = load_model(model, device="cpu")
    widths = {lin.in_features for block in get_layout(net).blocks for lin in block.linears.values()}
    for g in GROUP_CANDIDATES:
        if all(w % g == 0 for w in widths):
            return g
    raise ValueError(f"no group size in {GROUP_CANDIDATES} divides the in_features {sorted(widths)} of {model}")


def setting_string(label: str) -> str:
    """Paper label -> recipe setting: "W4A16 g128" -> "w4a16g128", "W8A8" -> "w8a8"."""
    return label.lower().replace(" ", "")


def recipe_for(model: str, method: str, setting: str, **calib) -> str:
    """The recipe string of a paper row for `model`: the paper's own configuration for a real model;
    for a tiny model the same method knobs with its group size and calibration on its own corpus."""
    from ..quant import CalibSpec, Recipe

    recipe = Recipe.paper(method, setting)
    if is_tiny(model):
        changes = {"calib": CalibSpec("tiny", **{**TINY_CALIB, **calib})}
        if recipe.group_size is not None:
            changes["group_size"] = min(recipe.group_size, suitable_group(model))
        recipe = recipe.with_(**changes)
    elif calib:
        from dataclasses import replace

        recipe = recipe.with_(calib=replace(recipe.calib, **calib))
    return str(recipe)


def paper_rows(table: int) -> list:
    """(method, setting) of every non-FP row of Table n, in printed order, without repeats."""
    from . import paper

    rows = []
    for _, setting, method in paper.table(table).index:
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
    recipes = ["fp"] + [recipe_for(model, m, s) for m, s in rows]
    if is_tiny(model):
        tasks = list(TINY_TABLE_TASKS[table])
    else:
        tasks = [t.lm_eval_task for t in table_tasks(table, family_of_name(model))]
    return grid([model], recipes, tasks)


@dataclass(frozen=True)
class Preset:
    """A named grid: `cells(model, reduced)` and the runner factory that evaluates its cells."""

    name: str
    description: str
    build: Callable  # (model: str, reduced: bool) -> list[Cell]
    make_runner: Optional[Callable] = None  # (**runner_kwargs) -> cell_fn; default CellRunner

    def cells(self, model: str = "tiny", reduced: bool = False) -> list:
        if model == "tiny" and not _tiny_asset():
            model = "tiny-random"
        return self.build(model, reduced)

    def runner(self, **kwargs):
        if self.make_runner is not None:
            return self.make_runner(**kwargs)
        from .runner import CellRunner

        return CellRunner(**kwargs)


def _tiny_asset() -> bool:
    return tiny_default() == "tiny"


def _paper_preset(n: int) -> Preset:
    from . import paper

    return Preset(f"table{n}", paper.CAPTIONS[n], lambda model, reduced: paper_cells(n, model, reduced))


PRESETS: dict = {f"table{n}": _paper_preset(n) for n in (1, 2, 3, 4, 5)}


def register(preset: Preset) -> Preset:
    PRESETS[preset.name] = preset
    return preset


def get_preset(name: str) -> Preset:
    _load_studies()
    if name not in PRESETS:
        raise ValueError(f"preset={name!r} is unknown; allowed: {sorted(PRESETS)}")
    return PRESETS[name]


def _load_studies() -> None:
    """Study and demo presets register themselves when their modules are imported."""
    from . import demo_grid, studies  # noqa: F401

