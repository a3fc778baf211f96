"""The paper's findings F1-F8 (reference/paper.md section 6) as data: which rows and categories each
rests on, the paper's drops for them, and the same drops measured on the tiny model.

    paper_evidence("F3")             the paper's drops (Base and Instruct) behind "GPTQ beats AWQ"
    tiny_evidence(frame, "F3")       the same (method, setting, category) drops from a TinyBench store
    dllmq.viz.results.plot_finding(frame, "F3")   both, side by side
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from .compare import recipe_row
from .tables import category_drops

WO = ("W4A16", "W3A16")
WA = ("W8A8", "W4A4")
CATS = ("general", "math", "code")


@dataclass(frozen=True)
class Finding:
    key: str
    claim: str
    rows: tuple  # (method, setting) pairs the claim compares
    categories: tuple = CATS


FINDINGS = {
    "F1": Finding("F1", "4-bit weight-only is the recommended setting; 3-bit hurts (most on math and code)",
                  tuple((m, s) for s in WO for m in ("gptq", "awq"))),
    "F2": Finding("F2", "W8A8 is near-lossless for every method; W4A4 is hard",
                  tuple((m, s) for s in WA for m in ("smoothquant", "quarot", "duquant"))),
    "F3": Finding("F3", "GPTQ beats AWQ for weight-only quantization", tuple((m, s) for s in WO for m in ("gptq", "awq"))),
    "F4": Finding("F4", "rotation methods (QuaRot, DuQuant) beat SmoothQuant; DuQuant is the best W-A method",
                  tuple((m, "W4A4") for m in ("smoothquant", "quarot", "duquant"))),
    "F5": Finding("F5", "math and code suffer most",
                  (("gptq", "W3A16"), ("awq", "W3A16"), ("quarot", "W4A4"), ("duquant", "W4A4"))),
    "F6": Finding("F6", "the Instruct model is more robust than the Base model",
                  (("gptq", "W3A16"), ("awq", "W3A16"), ("quarot", "W4A4"), ("duquant", "W4A4"))),
    "F7": Finding("F7", "the weight-only findings carry over to Dream-7B", tuple((m, s) for s in WO for m in ("gptq", "awq")),
                  ("general",)),
    "F8": Finding("F8", "outliers (normal and massive) are prevalent in dLLMs and are the main barrier to low bits", ()),
}


def get_finding(key: str) -> Finding:
    if key not in FINDINGS:
        raise ValueError(f"finding={key!r} is unknown; allowed: {sorted(FINDINGS)}")
    return FINDINGS[key]


def paper_evidence(key: str) -> pd.DataFrame:
    """The paper's drop (%) per (model, method, setting, category) behind finding `key`."""
    from . import tables as paper

    finding = get_finding(key)
    rows = []
    if key == "F7":
        dream = paper.table(5)
        for method, setting in finding.rows:
            drop = dream.loc[("Dream-7B", f"{setting} g128", method.upper()), "Drop"]
            rows.append({"model": "Dream-7B", "method": method, "setting": setting, "category": "general", "drop": drop})
        return pd.DataFrame(rows)
    for model in ("LLaDA-8B", "LLaDA-8B-Instruct"):
        for method, setting in finding.rows:
            for category, drop in category_drops(method, setting, model).items():
                if category in finding.categories:
                    rows.append({"model": model, "method": method, "setting": setting, "category": category,
                                 "drop": drop})
    return pd.DataFrame(rows, columns=["model", "method", "setting", "category", "drop"])


def tiny_drops(frame: pd.DataFrame) -> pd.DataFrame:
    """Drop (%) vs FP per (method, setting, category) from a TinyBench store frame."""
    if frame.empty or "fp" not in set(frame["recipe"]):
        raise ValueError("the frame needs an FP row (recipe 'fp') to compute drops")
    acc = frame.groupby(["recipe", "category"])["value"].mean().unstack("category")
    fp = acc.loc["fp"]
    rows = []
    for recipe, scores in acc.drop(index="fp").iterrows():
        setting, method = recipe_row(recipe)
        for category in acc.columns:
            drop = (scores[category] / fp[category] - 1.0) * 100.0 if fp[category] > 0 else float("nan")
            rows.append({"method": method.lower(), "setting": setting.split()[0], "category": category,
                         "drop": drop, "accuracy": scores[category] * 100, "fp_accuracy": fp[category] * 100})
    return pd.DataFrame(rows)


def tiny_evidence(frame: pd.DataFrame, key: str) -> pd.DataFrame:
    """Our drops for the finding's rows and categories (rows the store lacks are left out)."""
    finding = get_finding(key)
    drops = tiny_drops(frame)
    keep = [(m, s) in set(finding.rows) and c in finding.categories
            for m, s, c in zip(drops["method"], drops["setting"], drops["category"])]
    return drops[keep].reset_index(drop=True)
