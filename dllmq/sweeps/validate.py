"""Validate a whole sweep grid before any work: every cell's model, recipe, task and variant options.

    validate_cells(cells)             raise GridError listing every bad cell (None of them has run yet)
    read_grid_file("grid.json")       the checked grid spec {models, recipes, tasks, variants} of a grid file

A sweep that fails on its 40th cell after 39 were evaluated wastes hours; here each cell is checked the
way the built-in runner (`runner.py`, `tasks.py`) will use it, without loading a big model:
  model    a known name, a local model directory, or a hub id "org/name"
  recipe   "fp" or a recipe string that parses (recipe.py: no duplicates, no no-ops); for a kit tiny model it
           must also fit the model's sizes (`quant.check_fits`; the tiny model is loaded once, on the CPU)
  task     "fidelity", "memory", a TinyBench task or group, or a paper task of the model's family
  variant  only the options that task reads (`tasks.DECODING_OPTIONS`; fidelity: ratio; memory: backend),
           each with an allowed value
A grid run by a custom cell function (`--cell-fn`) gives models, recipes, tasks and options its own meaning:
pass `builtin_runner=False` to check only the grid's structure (cells, keys, types).
"""
from __future__ import annotations

import itertools
import json
import math
import os
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Optional, Union

GRID_KEYS = ("models", "recipes", "tasks", "variants")
MAX_LISTED = 20  # problems printed in one GridError


class GridError(ValueError):
    """Some cells of a sweep grid are invalid (the message lists them); nothing was run."""


# ----------------------------------------------------------------------------------------------- one cell


def check_model_name(name) -> None:
    """A known model, an existing local model directory, or a hub id "org/name"."""
    from ..models.loading import known_models

    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"model={name!r} must be a model name, a local directory or a hub id 'org/name'")
    if name in (*known_models(), "smollm2"):
        return
    looks_local = name.startswith(("/", ".", "~")) or name.count("/") > 1 or Path(name).exists()
    if looks_local:
        path = Path(name).expanduser()
        if not (path / "config.json").is_file():
            raise ValueError(f"model={name!r}: {path} is not a model directory (no config.json)" if path.is_dir()
                             else f"model={name!r}: directory {path} does not exist")
        return
    if "/" not in name:
        raise ValueError(f"model={name!r} is not a known model; known: {known_models()} (or a local directory / "
                         "a hub id 'org/name')")


def _check_recipe(recipe):
    """The Recipe of a cell (None for "fp"); a string that does not parse is an error saying why."""
    from ..quant import Recipe

    if recipe == "fp":
        return None
    if not isinstance(recipe, str):
        raise ValueError(f"recipe={recipe!r} must be 'fp' or a recipe string like 'gptq:w4a16g128'")
    try:
        return Recipe.parse(recipe)
    except (TypeError, ValueError) as err:
        raise ValueError(f"recipe {recipe!r} is invalid: {err}") from None


@lru_cache(maxsize=4)
def _tiny_layout(model: str):
    from ..models import get_layout, load_model

    net, _ = load_model(model, device="cpu")
    return get_layout(net)


def _check_fit(model: str, recipe) -> None:
    """A recipe that does not fit a kit tiny model's sizes fails here, not after earlier cells ran."""
    from ..models import is_tiny
    from ..quant import check_fits

    if recipe is not None and is_tiny(model):
        check_fits(_tiny_layout(model), recipe)


def _int_option(name: str, value, low: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"variant option {name}={value!r} must be an int >= {low}")


def _number_option(name: str, value, low: float = 0.0, high: Optional[float] = None) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < low \
            or (high is not None and value > high):
        allowed = f"a number in [{low:g}, {high:g}]" if high is not None else f"a number >= {low:g}"
        raise ValueError(f"variant option {name}={value!r} is invalid; allowed: {allowed}")


def _check_decoding(options: dict, task: str) -> None:
    from ..decoding import DREAM_ALGS, REMASKING, _check_llada_args
    from .tasks import DECODING_OPTIONS

    unknown = sorted(set(options) - set(DECODING_OPTIONS))
    if unknown:
        raise ValueError(f"variant options {unknown} are unknown for task {task!r}; allowed: {list(DECODING_OPTIONS)}")
    for name in ("steps", "gen_length", "block_length", "mc_samples", "batch_size"):
        if name in options:
            _int_option(name, options[name])
    if "seed" in options:
        _int_option("seed", options["seed"], low=0)
    for name in ("temperature", "cfg_scale"):
        if name in options:
            _number_option(name, options[name])
    if "remasking" in options and options["remasking"] not in REMASKING:
        raise ValueError(f"variant option remasking={options['remasking']!r} is unknown; allowed: {REMASKING}")
    if "alg" in options and options["alg"] not in DREAM_ALGS:
        raise ValueError(f"variant option alg={options['alg']!r} is unknown; allowed: {DREAM_ALGS}")
    if "gen_length" in options and "block_length" in options:
        gen, block = options["gen_length"], options["block_length"]
        steps = options.get("steps", gen)  # without steps the sampler takes one token per step
        _check_llada_args(steps, gen, block, 0.0, 0.0, "low_confidence")


def _check_task(model: str, recipe, task, options: dict) -> None:
    """The task exists for this model and reads exactly the variant options given, with allowed values."""
    from ..eval.tasks import GROUPS, TASKS

    if not isinstance(task, str):
        raise ValueError(f"task={task!r} must be a task name")
    if task == "fidelity":
        unknown = sorted(set(options) - {"ratio"})
        if unknown:
            raise ValueError(f"variant options {unknown} are unknown for task 'fidelity'; allowed: ['ratio']")
        if recipe is None:
            raise ValueError("task 'fidelity' compares a quantized model with the FP model: recipe 'fp' measures "
                             "nothing (KL 0, agreement 1); give a quantized recipe")
        if "ratio" in options:
            ratio = options["ratio"]
            if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0 < ratio <= 1:
                raise ValueError(f"variant option ratio={ratio!r} is invalid; allowed: a mask ratio in (0, 1]")
        return
    if task == "memory":
        from .lowbit import BACKENDS, FP_BACKENDS

        unknown = sorted(set(options) - {"backend"})
        if unknown:
            raise ValueError(f"variant options {unknown} are unknown for task 'memory'; allowed: ['backend']")
        backend = options.get("backend")
        if backend is None:
            raise ValueError(f"task 'memory' needs a backend option in its variant; allowed: {list(BACKENDS)}")
        if backend not in BACKENDS:
            raise ValueError(f"variant option backend={backend!r} is unknown; allowed: {list(BACKENDS)}")
        if backend in FP_BACKENDS and recipe is not None:
            raise ValueError(f"backend={backend!r} is built from the FP model, so the quantized recipe would be "
                             "unused: give recipe 'fp'")
        if backend not in FP_BACKENDS and recipe is None:
            raise ValueError(f"backend={backend!r} stores a fake-quantized model: give a quantized recipe, not 'fp'")
        return
    if task in TASKS or task in GROUPS:
        _check_decoding(options, task)
        return
    from ..eval.presets import LLADA_TASKS, family_of_name, get_task

    family = family_of_name(model)
    try:
        get_task(task, family)
    except ValueError:
        allowed = ["fidelity", "memory", *TASKS, *GROUPS]
        paper = [t.lm_eval_task for t in LLADA_TASKS]
        raise ValueError(f"task={task!r} is unknown for model {model!r} (family {family}); allowed: {allowed} or a "
                         f"paper task of the family (LLaDA: {paper}; Dream: winogrande, piqa, arc_challenge, "
                         "arc_easy)") from None
    _check_decoding(options, task)


def check_cell(model, recipe, task, options: dict) -> None:
    """One cell as the built-in runner will run it; raises ValueError saying what is wrong."""
    check_model_name(model)
    parsed = _check_recipe(recipe)
    _check_task(model, parsed, task, options)
    _check_fit(model, parsed)


# ----------------------------------------------------------------------------------------------- the grid


def _cell_parts(cell, i: int) -> tuple:
    """(model, recipe, task, options) of a sweep Cell (duck-typed: this module imports nothing from sweep.py)."""
    if not all(hasattr(cell, a) for a in ("model", "recipe", "task", "variant", "options")):
        raise TypeError(f"cells[{i}]={cell!r} must be a Cell (dllmq.sweeps.make_cell / grid)")
    return cell.model, cell.recipe, cell.task, cell.options


def _raise_problems(problems: list, total: int) -> None:
    if problems:
        listed = "\n  ".join(problems[:MAX_LISTED])
        more = f"\n  ... and {len(problems) - MAX_LISTED} more" if len(problems) > MAX_LISTED else ""
        raise GridError(f"{len(problems)} of {total} cells are invalid, so no cell was run:\n  {listed}{more}")


def validate_cells(cells: Iterable, builtin_runner: bool = True) -> list:
    """Check every cell before any runs; returns the cells as a list, or raises GridError listing every
    invalid cell (numbered from 1, with its key and what is wrong). builtin_runner=False (a custom cell
    function) checks only that `cells` is a non-empty list of Cells."""
    if isinstance(cells, (str, bytes)) or not hasattr(cells, "__iter__"):
        raise TypeError(f"cells={cells!r} must be a list of Cells")
    cells = list(cells)
    if not cells:
        raise ValueError("cells is empty: the grid has no cell (check its models, recipes, tasks and variants)")
    problems = []
    seen: dict = {}
    for i, cell in enumerate(cells):
        model, recipe, task, options = _cell_parts(cell, i)
        if not builtin_runner:
            continue
        key = (model, recipe, task, tuple(sorted(options.items())))
        if key not in seen:  # a repeated cell has the same verdict
            try:
                check_cell(model, recipe, task, options)
                seen[key] = None
            except (TypeError, ValueError) as err:
                seen[key] = str(err)
        if seen[key] is not None:
            problems.append(f"cell {i + 1} ({cell.key}): {seen[key]}")
    _raise_problems(problems, len(cells))
    return cells


def _string_list(spec: dict, name: str, where: str) -> list:
    values = spec[name]
    if isinstance(values, str) or not isinstance(values, list):
        raise ValueError(f"{where}: {name} must be a list of strings, got {values!r}")
    if not values:
        raise ValueError(f"{where}: {name} is empty; give at least one")
    for i, value in enumerate(values):
        if not isinstance(value, str):
            raise ValueError(f"{where}: {name}[{i}]={value!r} must be a str")
    return values


def check_grid_spec(spec, where: str = "grid", builtin_runner: bool = True) -> dict:
    """A grid spec {models, recipes, tasks[, variants]} checked key by key, then (for the built-in runner)
    cell by cell; returns it with variants filled in ([{}] when absent)."""
    if not isinstance(spec, dict):
        raise ValueError(f"{where} must hold a JSON object {{\"models\": [...], \"recipes\": [...], \"tasks\": [...], "
                         f"\"variants\": [{{...}}]}}, got a {type(spec).__name__}")
    unknown = sorted(set(spec) - set(GRID_KEYS))
    if unknown:
        raise ValueError(f"{where}: key {unknown[0]!r} is unknown; allowed: {list(GRID_KEYS)}")
    missing = [k for k in GRID_KEYS[:3] if k not in spec]
    if missing:
        raise ValueError(f"{where} lacks {missing}; it needs models, recipes, tasks (variants optional)")
    out = {name: _string_list(spec, name, where) for name in GRID_KEYS[:3]}
    variants = spec.get("variants") or [{}]
    if not isinstance(variants, list):
        raise ValueError(f"{where}: variants must be a list of option objects, got {variants!r}")
    for i, variant in enumerate(variants):
        if not isinstance(variant, dict) or not all(isinstance(v, (str, int, float)) and not isinstance(v, bool)
                                                    for v in variant.values()):
            raise ValueError(f"{where}: variants[{i}]={variant!r} must be an object of options with str or number "
                             "values, e.g. {\"steps\": 64}")
    out["variants"] = variants
    if not builtin_runner:
        return out
    problems = []
    combos = list(itertools.product(out["models"], out["recipes"], out["tasks"], variants))
    for i, (model, recipe, task, options) in enumerate(combos):
        try:
            check_cell(model, recipe, task, options)
        except (TypeError, ValueError) as err:
            problems.append(f"cell {i + 1} ({model}|{recipe}|{task}|{options}): {err}")
    _raise_problems(problems, len(combos))
    return out


def read_grid_file(path: Union[str, os.PathLike], builtin_runner: bool = True) -> dict:
    """The checked spec of a JSON grid file (what `dllmq sweep --grid` reads): build its cells with
    `grid(**spec)`. Invalid JSON names the line and column; every cell is checked (`check_grid_spec`)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"grid file {path} does not exist")
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ValueError(f"grid file {path} is not UTF-8 text") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"grid file {path} is not valid JSON: {err.msg} at line {err.lineno} column {err.colno}") \
            from None
    return check_grid_spec(spec, f"grid file {path}", builtin_runner)
