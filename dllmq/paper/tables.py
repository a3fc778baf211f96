"""The paper as data: "Quantization Meets dLLMs" (Lin, Xu et al., arXiv 2508.14896 v3), Tables 1-5.

`table(n)` rebuilds Table n from the shipped `paper_results.csv` (values exactly as printed; drops in
percent, negative = worse). `check()` recomputes every printed average and drop from the printed task
scores and flags the rows that cannot be explained by rounding -- the paper's misprints.
`bands` classify a drop with the paper's scale: <1% negligible, 1-4% moderate, >4% significant.

Averaging rules (the paper's own, verified by `check`):
  Table 1 averages the five columns WinoGrande, PIQA, ARC-C, Hellaswag, MMLU -- ARC-E is printed but left
  out of "Avg" (every row matches the 5-column mean, none the 6-column mean). Tables 2 and 5 average all
  their task columns; Tables 3 and 4 average GSM8K+Math ("math") and HumanEval+MBPP ("code").
"""
from __future__ import annotations

import math
from functools import lru_cache
from importlib import resources
from typing import Optional

import pandas as pd

TABLES = (1, 2, 3, 4, 5)
INDEX = ("Model", "Setting", "Method")
# task columns in printed order and the columns each group's "Avg" averages (paper's rule)
COLUMNS = {
    1: ("WinoGrande", "PIQA", "ARC-C", "ARC-E", "Hellaswag", "MMLU"),
    2: ("WinoGrande", "PIQA", "ARC-C", "ARC-E", "MMLU"),
    3: ("GSM8K", "Math", "HumanEval", "MBPP"),
    4: ("GSM8K", "Math", "HumanEval", "MBPP"),
    5: ("WinoGrande", "PIQA", "ARC-C", "ARC-E"),
}
GROUPS = {
    1: {"general": ("WinoGrande", "PIQA", "ARC-C", "Hellaswag", "MMLU")},
    2: {"general": ("WinoGrande", "PIQA", "ARC-C", "ARC-E", "MMLU")},
    3: {"math": ("GSM8K", "Math"), "code": ("HumanEval", "MBPP")},
    4: {"math": ("GSM8K", "Math"), "code": ("HumanEval", "MBPP")},
    5: {"general": ("WinoGrande", "PIQA", "ARC-C", "ARC-E")},
}
CAPTIONS = {
    1: "Table 1: general tasks, weight-only quantization (LLaDA-8B Base / Instruct)",
    2: "Table 2: general tasks, weight-activation quantization (LLaDA-8B Base / Instruct)",
    3: "Table 3: math and code, weight-only quantization (LLaDA-8B Base / Instruct)",
    4: "Table 4: math and code, weight-activation quantization (LLaDA-8B Base / Instruct)",
    5: "Table 5: general tasks, weight-only quantization (Dream-7B Base)",
}
# the misprints documented in reference/paper.md section 4; check() must find exactly these
KNOWN_MISPRINTS = {
    ("T1", "LLaDA-8B-Instruct", "W4A16 g128", "AWQ", "general_drop"):
        "prints down 0.1%; the averages 64.92 vs 65.68 give down 1.2%",
    ("T2", "LLaDA-8B", "W4A4", "QuaRot", "general_avg"):
        "prints 59.2; the five scores average 61.24 (and the printed drop 6.6% matches 61.2)",
    ("T4", "LLaDA-8B-Instruct", "W8A8", "SmoothQuant", "code_avg"):
        "prints 38.6; (37.2 + 37.1) / 2 = 37.15 (and the printed drop 1.3% matches ~37.1)",
}
PRINT_ROUNDING = 0.05  # every printed number is rounded to 0.1
BANDS = {"negligible": "< 1%", "moderate": "1-4%", "significant": "> 4%"}


def _check_table(n: int) -> None:
    if n not in TABLES:
        raise ValueError(f"table={n!r} is not a table of the paper; allowed: {TABLES}")


@lru_cache(maxsize=1)
def _raw() -> pd.DataFrame:
    path = resources.files("dllmq").joinpath("data", "paper_results.csv")
    with path.open("r", encoding="utf-8") as handle:
        frame = pd.read_csv(handle, dtype={"value": "float64"})
    return frame


def paper_results() -> pd.DataFrame:
    """The long-format csv: table, model, setting, method, metric, value (a copy)."""
    return _raw().copy()


def band(drop_pct: float) -> str:
    """Paper's scale for a relative change in percent (negative = worse): negligible / moderate / significant."""
    if drop_pct is None or (isinstance(drop_pct, float) and math.isnan(drop_pct)):
        return ""
    degradation = -float(drop_pct)
    if degradation < 1.0:
        return "negligible"
    return "moderate" if degradation <= 4.0 else "significant"


def _summary_name(metric: str) -> str:
    group, kind = metric.rsplit("_", 1)
    prefix = "" if group == "general" else group.capitalize() + " "
    return prefix + kind.capitalize()


def _metric_name(column: str, n: int) -> str:
    if column in COLUMNS[n]:
        return column
    words = column.split()
    group = "general" if len(words) == 1 else words[0].lower()
    return f"{group}_{words[-1].lower()}"


def table_columns(n: int) -> list:
    """Column labels of Table n in printed order (tasks, then Avg/Drop per group)."""
    _check_table(n)
    columns = []
    for group, cols in GROUPS[n].items():
        shown = COLUMNS[n] if group == "general" else cols  # Table 1 shows ARC-E but does not average it
        columns += [*shown, _summary_name(f"{group}_avg"), _summary_name(f"{group}_drop")]
    return columns


def table(n: int, corrected: bool = False) -> pd.DataFrame:
    """Table n shaped like the paper: rows (Model, Setting, Method), task columns, Avg and Drop per group.

    corrected=True replaces the flagged misprints with the values recomputed by `check`."""
    _check_table(n)
    long = _raw()[_raw()["table"] == f"T{n}"]
    if corrected:
        long = long.copy()
        for _, row in check(n).query("flagged").iterrows():
            hit = ((long.model == row.model) & (long.setting == row.setting) & (long.method == row.method)
                   & (long.metric == row.metric))
            long.loc[hit, "value"] = round(row.recomputed, 1)
    wide = long.pivot_table(index=["model", "setting", "method"], columns="metric", values="value",
                            aggfunc="first", dropna=False, sort=False)
    order = list(dict.fromkeys(zip(long.model, long.setting, long.method)))  # printed row order
    wide = wide.reindex(pd.MultiIndex.from_tuples(order, names=list(INDEX)))
    columns = table_columns(n)
    wide = wide.reindex(columns=[_metric_name(c, n) for c in columns])
    wide.columns = columns
    wide.columns.name = None
    return wide


def to_long(wide: pd.DataFrame, n: int) -> pd.DataFrame:
    """Inverse of `table`: back to the csv's long format (table, model, setting, method, metric, value)."""
    _check_table(n)
    rows = []
    for (model, setting, method), values in wide.iterrows():
        for column, value in values.items():
            rows.append({"table": f"T{n}", "model": model, "setting": setting, "method": method,
                         "metric": _metric_name(column, n), "value": value})
    return pd.DataFrame(rows, columns=["table", "model", "setting", "method", "metric", "value"])


def format_drop(value: float) -> str:
    """-0.3 -> "↓ 0.3%", 0.5 -> "↑ 0.5%", -0.0 -> "↓ 0.0%" (the paper's arrows)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    arrow = "↓" if math.copysign(1.0, value) < 0 else "↑"
    return f"{arrow} {abs(value):.1f}%"


def format_table(wide: pd.DataFrame) -> pd.DataFrame:
    """Strings as printed in the paper (scores with one decimal, drops with arrows)."""
    out = wide.copy().astype(object)
    for column in out.columns:
        if column.endswith("Drop"):
            out[column] = [format_drop(v) for v in wide[column]]
        else:
            out[column] = [("–" if pd.isna(v) else f"{v:.1f}") for v in wide[column]]
    return out


# ---- the arithmetic check -------------------------------------------------------------------------------
def _drop(avg: float, fp_avg: float) -> float:
    return (avg / fp_avg - 1.0) * 100.0


def _drop_tolerance(avg: float, fp_avg: float) -> float:
    """Worst case |printed - recomputed| explained by rounding: the printed drop is rounded (0.05) and each
    average recomputed from 0.1-rounded scores is off by at most 0.05; first-order propagation."""
    ratio = avg / fp_avg
    return PRINT_ROUNDING + 100.0 * abs(ratio) * (PRINT_ROUNDING / max(abs(avg), PRINT_ROUNDING)
                                                  + PRINT_ROUNDING / abs(fp_avg)) + 1e-9


def check(n: Optional[int] = None) -> pd.DataFrame:
    """Recompute every printed Avg and Drop; one row per (table, model, setting, method, metric).

    Avg tolerance: 0.1 (printed avg rounded + scores rounded); Drop tolerance: `_drop_tolerance`.
    Columns: table, model, setting, method, metric, printed, recomputed, diff, tolerance, flagged, known, note."""
    tables = TABLES if n is None else (n,)
    rows = []
    for t in tables:
        _check_table(t)
        long = _raw()[_raw()["table"] == f"T{t}"]
        for model, per_model in long.groupby("model", sort=False):
            fp = per_model[per_model.method == "FP"].set_index("metric").value
            for (setting, method), r in per_model.groupby(["setting", "method"], sort=False):
                r = r.set_index("metric").value
                for group, cols in GROUPS[t].items():
                    avg, fp_avg = r[list(cols)].mean(), fp[list(cols)].mean()
                    items = [(f"{group}_avg", avg, 2 * PRINT_ROUNDING + 1e-9)]
                    if method != "FP":
                        items.append((f"{group}_drop", _drop(avg, fp_avg), _drop_tolerance(avg, fp_avg)))
                    for metric, recomputed, tol in items:
                        printed = r[metric]
                        key = (f"T{t}", model, setting, method, metric)
                        flagged = bool(abs(printed - recomputed) > tol)
                        rows.append({"table": f"T{t}", "model": model, "setting": setting, "method": method,
                                     "metric": metric, "printed": printed, "recomputed": recomputed,
                                     "diff": printed - recomputed, "tolerance": tol, "flagged": flagged,
                                     "known": key in KNOWN_MISPRINTS, "note": KNOWN_MISPRINTS.get(key, "")})
    return pd.DataFrame(rows)


def misprints(n: Optional[int] = None) -> pd.DataFrame:
    """Only the flagged rows of `check` (the paper's misprints)."""
    result = check(n)
    return result[result.flagged].reset_index(drop=True)


def table1_average_rule() -> dict:
    """How many Table 1 rows match the 5-column (no ARC-E) vs the 6-column mean, within 0.1."""
    long = _raw()[_raw()["table"] == "T1"]
    five = six = total = 0
    for _, r in long.groupby(["model", "setting", "method"], sort=False):
        r = r.set_index("metric").value
        total += 1
        five += abs(r[list(GROUPS[1]["general"])].mean() - r["general_avg"]) <= 0.1 + 1e-9
        six += abs(r[list(COLUMNS[1])].mean() - r["general_avg"]) <= 0.1 + 1e-9
    return {"rows": total, "match_without_arc_e": int(five), "match_with_arc_e": int(six)}


def report(n: Optional[int] = None) -> str:
    """A readable summary of the check: the averaging rule and every flagged row."""
    rule = table1_average_rule()
    lines = [f"Table 1 Avg excludes ARC-E: {rule['match_without_arc_e']}/{rule['rows']} rows match the "
             f"5-column mean, {rule['match_with_arc_e']}/{rule['rows']} the 6-column mean."]
    for _, row in misprints(n).iterrows():
        lines.append(f"{row.table} {row.model} {row.setting} {row.method} {row.metric}: printed "
                     f"{row.printed:+.1f}, recomputed {row.recomputed:+.2f} ({row.note or 'NEW'})")
    return "\n".join(lines)


def paper_value(n: int, model: str, setting: str, method: str, column: str) -> float:
    """One printed number, e.g. paper_value(3, "LLaDA-8B", "W3A16 g128", "GPTQ", "Math Drop")."""
    wide = table(n)
    try:
        return float(wide.loc[(model, setting, method), column])
    except KeyError:
        raise KeyError(f"no cell ({model}, {setting}, {method}, {column}) in Table {n}; rows: "
                       f"{list(wide.index)}; columns: {list(wide.columns)}") from None



def category_drops(method: str, setting: str, paper_model: str = "LLaDA-8B-Instruct") -> dict:
    """The paper's drop (%) per category for a method at a setting: general from Table 1 (weight-only)
    or 2 (W-A), math and code from Table 3 or 4 (misprints corrected). {} when the paper has no such row
    (e.g. RTN). method: "gptq"/"GPTQ"...; setting: "w4a16g128", "W4A16", "W8A8"..."""
    names = {"gptq": "GPTQ", "awq": "AWQ", "smoothquant": "SmoothQuant", "quarot": "QuaRot", "duquant": "DuQuant"}
    name = names.get(method.lower())
    bits = setting.upper().replace(" ", "").split("G")[0]
    weight_only = bits.endswith("A16")
    label = f"{bits} g128" if weight_only else bits
    general = table(1 if weight_only else 2, corrected=True)
    mathcode = table(3 if weight_only else 4, corrected=True)
    key = (paper_model, label, name)
    if name is None or key not in general.index or key not in mathcode.index:
        return {}
    return {"general": float(general.loc[key, "Drop"]), "math": float(mathcode.loc[key, "Math Drop"]),
            "code": float(mathcode.loc[key, "Code Drop"])}
