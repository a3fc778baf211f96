"""Paper vs measured, side by side: per-task scores, group averages, drops vs FP and the paper's bands.

`compare(measured, table=n)` takes measured results (a store DataFrame: recipe, task, metric, value[,
category, model]) and returns one row per (Setting, Method) with paired "paper" / "ours" columns.
Averages follow the paper's own rule for Table n (Table 1 leaves ARC-E out). When the measured tasks
are not the paper's (the tiny model's TinyBench), each group average is taken over the measured tasks
of that category (or all tasks when none has it) and only averages, drops and bands are paired: a
drop is relative, so it compares across models of any size.
"""
from __future__ import annotations

import re
from typing import Optional

import pandas as pd

from . import tables as paper

METHOD_NAMES = {"rtn": "RTN", "gptq": "GPTQ", "awq": "AWQ", "smoothquant": "SmoothQuant", "quarot": "QuaRot",
                "duquant": "DuQuant", "fp": "FP"}
_SETTING_RE = re.compile(r"^w(\d+)a(\d+)(?:g(\d+))?")
METRIC_PREFERENCE = ("acc,none", "acc", "exact_match,flexible-extract", "exact_match,none", "exact_match",
                     "pass@1,create_test", "pass_at_1,none", "pass@1", "accuracy")


def recipe_row(recipe: str) -> tuple:
    """Recipe string -> (Setting, Method) labels as the paper prints them: "gptq:w4a16g128" ->
    ("W4A16 g128", "GPTQ"); "fp" -> ("FP", "FP")."""
    if recipe.lower() in ("fp", "fp16", "bf16", "fp32", "none"):
        return "FP", "FP"
    method, _, rest = recipe.partition(":")
    match = _SETTING_RE.match(rest.lower())
    if not match:
        raise ValueError(f"recipe={recipe!r} must look like 'method:w4a16g128' or 'fp'")
    w, a, g = match.groups()
    setting = f"W{w}A{a}" + (f" g{g}" if g else "")
    return setting, METHOD_NAMES.get(method.lower(), method)


def recipe_label(recipe: str) -> str:
    """"gptq:w4a16g32:calib=tiny" -> "GPTQ W4A16 g32"; "fp" -> "FP"."""
    setting, method = recipe_row(recipe)
    return "FP" if method == "FP" else f"{method} {setting}"


def calibration_kind(recipe: str) -> str:
    """"clean", "mask0.5", "uniform" from a recipe's mask= option."""
    for part in recipe.split(":")[-1].split(","):
        if part.startswith("mask="):
            value = part.split("=", 1)[1]
            return "uniform" if value == "uniform" else f"mask{value}"
    return "clean"


def strip_calibration(recipe: str) -> str:
    head = recipe.split(":")
    if len(head) < 3:
        return recipe
    kept = [p for p in head[2].split(",") if not p.startswith("mask=")]
    return ":".join(head[:2] + ([",".join(kept)] if kept else []))


def paper_setting(setting: str) -> str:
    """The paper's label for the same bit-widths (weight-only settings are g128 in the paper)."""
    bits = setting.split()[0]
    return f"{bits} g128" if bits.endswith("A16") and bits != "FP" else bits


def paper_model_of(name: str) -> str:
    """Paper row label for a hub id: LLaDA-8B (Base), LLaDA-8B-Instruct or Dream-7B."""
    low = name.lower()
    if "dream" in low:
        return "Dream-7B"
    if "llada" in low:
        return "LLaDA-8B-Instruct" if "instruct" in low or "1.5" in low else "LLaDA-8B"
    raise ValueError(f"model={name!r} is not one of the paper's models; pass paper_model= explicitly "
                     "('LLaDA-8B', 'LLaDA-8B-Instruct' or 'Dream-7B')")


def _column_of(task: str) -> str:
    from ..eval.presets import LLADA_TASKS

    for t in LLADA_TASKS:
        if task in (t.name, t.lm_eval_task):
            return t.name
    return task


def primary_metric(metrics) -> str:
    metrics = list(dict.fromkeys(metrics))
    for preferred in METRIC_PREFERENCE:
        if preferred in metrics:
            return preferred
    return sorted(metrics)[0]


def measured_table(measured: pd.DataFrame, scale: Optional[float] = None) -> tuple:
    """(wide scores in percent indexed by (Setting, Method), {column: category}) from store records."""
    need = {"recipe", "task", "value"}
    if not need <= set(measured.columns):
        raise ValueError(f"measured lacks columns {sorted(need - set(measured.columns))}; "
                         "pass a ResultStore(...).to_frame() or a frame with recipe, task, value")
    frame = measured.copy()
    if "metric" in frame:
        keep = frame.groupby("task")["metric"].agg(primary_metric)
        frame = frame[frame["metric"] == frame["task"].map(keep)]
    if scale is None:
        scale = 100.0 if frame["value"].dropna().abs().max() <= 1.0 else 1.0
    frame["column"] = frame["task"].map(_column_of)
    rows = frame["recipe"].map(recipe_row)
    frame["Setting"], frame["Method"] = rows.str[0], rows.str[1]
    frame["score"] = frame["value"].astype(float) * scale
    wide = frame.pivot_table(index=["Setting", "Method"], columns="column", values="score", aggfunc="mean",
                             sort=False)
    wide.columns.name = None
    categories = {}
    if "category" in frame:
        categories = frame.dropna(subset=["category"]).groupby("column")["category"].first().to_dict()
    order = sorted(wide.index, key=lambda sm: (sm != ("FP", "FP"), -_bits(sm[0]), _method_rank(sm[1])))
    return wide.reindex(pd.MultiIndex.from_tuples(order, names=["Setting", "Method"])), categories


def _method_rank(method: str) -> tuple:
    order = ("FP", "RTN", "GPTQ", "AWQ", "SmoothQuant", "QuaRot", "DuQuant")
    return (order.index(method), "") if method in order else (len(order), method)


def _bits(setting: str) -> int:
    digits = re.findall(r"\d+", setting)
    return 99 if not digits else int(digits[0]) * 100 + int(digits[1])


def _group_columns(table: int, wide: pd.DataFrame, categories: dict) -> dict:
    groups = {}
    for group, cols in paper.GROUPS[table].items():
        if all(c in wide.columns for c in cols):
            groups[group] = list(cols)  # the paper's own rule
        else:
            of_group = [c for c in wide.columns if categories.get(c) == group]
            groups[group] = of_group or list(wide.columns)
    return groups


def compare(measured: pd.DataFrame, table: int, paper_model: Optional[str] = None, show: bool = True,
            scale: Optional[float] = None) -> pd.DataFrame:
    """Paper vs measured for Table n; prints the comparison when show=True and returns it.

    Columns are pairs (label, "paper") / (label, "ours"): every paper task column that was measured,
    then "<group> avg", "<group> drop" (percent vs FP, negative = worse) and "<group> band"."""
    paper._check_table(table)
    wide, categories = measured_table(measured, scale)
    if paper_model is None:
        models = set(measured["model"]) if "model" in measured else set()
        try:
            paper_model = paper_model_of(next(iter(models))) if len(models) == 1 else None
        except ValueError:
            paper_model = None
        paper_model = paper_model or ("Dream-7B" if table == 5 else "LLaDA-8B-Instruct")
    ref = paper.table(table)
    if paper_model not in ref.index.get_level_values(0):
        raise ValueError(f"paper_model={paper_model!r} is not in Table {table}; "
                         f"allowed: {sorted(set(ref.index.get_level_values(0)))}")
    ref = ref.loc[paper_model]
    groups = _group_columns(table, wide, categories)
    fp = wide.loc[("FP", "FP")] if ("FP", "FP") in wide.index else None
    out = {}
    for (setting, method), scores in wide.iterrows():
        key = (paper_setting(setting) if setting != "FP" else "FP", method)
        paper_row = ref.loc[key] if key in ref.index else None
        row = {}
        for column in wide.columns:
            if column in ref.columns:
                row[(column, "paper")] = None if paper_row is None else paper_row[column]
                row[(column, "ours")] = scores[column]
        for group, cols in groups.items():
            label = group.capitalize()
            avg = scores[cols].mean(skipna=False)  # NaN unless every task of the group was measured
            drop = None if fp is None or setting == "FP" else (avg / fp[cols].mean() - 1.0) * 100.0
            p_avg = None if paper_row is None else paper_row[paper._summary_name(f"{group}_avg")]
            p_drop = None if paper_row is None or setting == "FP" else paper_row[paper._summary_name(f"{group}_drop")]
            row[(f"{label} avg", "paper")], row[(f"{label} avg", "ours")] = p_avg, avg
            row[(f"{label} drop", "paper")], row[(f"{label} drop", "ours")] = p_drop, drop
            row[(f"{label} band", "paper")] = "" if p_drop is None else paper.band(p_drop)
            row[(f"{label} band", "ours")] = "" if drop is None else paper.band(drop)
        out[(setting, method)] = row
    result = pd.DataFrame.from_dict(out, orient="index")
    result.index = pd.MultiIndex.from_tuples(result.index, names=["Setting", "Method"])
    result.columns = pd.MultiIndex.from_tuples(result.columns)
    result.attrs.update(table=table, paper_model=paper_model, groups=groups)
    if show:
        print(format_comparison(result))
    return result


def format_comparison(result: pd.DataFrame) -> str:
    """The comparison as text: scores with one decimal, drops with the paper's arrows."""
    shown = result.copy().astype(object)
    for column in shown.columns:
        label = column[0]
        if label.endswith("band"):
            continue
        fmt = paper.format_drop if label.endswith("drop") else (lambda v: f"{v:.1f}")
        shown[column] = ["–" if v is None or pd.isna(v) else fmt(float(v)) for v in result[column]]
    title = (f"{paper.CAPTIONS[result.attrs.get('table', 1)]}\npaper = {result.attrs.get('paper_model')} as "
             "printed; ours = measured. Bands: <1% negligible, 1-4% moderate, >4% significant.")
    if result.attrs.get("table") == 1:
        title += "\nAvg excludes ARC-E, as the paper's Table 1 does."
    return title + "\n" + shown.to_string()
