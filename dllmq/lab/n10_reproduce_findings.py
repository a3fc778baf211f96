"""Notebook 10 (reproduce the findings): what the live dashboard computes for one model, method and
bit-width -- accuracy per category next to the paper's drops, and the activation ranges of the quantized
model -- cached per (model, method, setting). `dllmq.viz.widgets` draws it and wires the dropdowns.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
import pandas as pd

WEIGHT_ONLY = ("W4A16", "W3A16")
WEIGHT_ACTIVATION = ("W8A8", "W4A4")
METHOD_SETTINGS = {"rtn": WEIGHT_ONLY + WEIGHT_ACTIVATION, "gptq": WEIGHT_ONLY, "awq": WEIGHT_ONLY,
                   "smoothquant": WEIGHT_ACTIVATION, "quarot": WEIGHT_ACTIVATION, "duquant": WEIGHT_ACTIVATION}
PAPER_SETTING = {"W4A16": "w4a16g128", "W3A16": "w3a16g128", "W8A8": "w8a8", "W4A4": "w4a4"}
ACT_ROLES = ("q", "o", "up", "down")


def settings_for(method: str) -> tuple:
    """Bit settings a method runs at (weight-only methods at W-only settings, W-A methods at W-A, RTN at all)."""
    if method not in METHOD_SETTINGS:
        raise ValueError(f"method={method!r} is unknown; allowed: {tuple(METHOD_SETTINGS)}")
    return METHOD_SETTINGS[method]


def recipe_string(model: str, method: str, setting: str) -> str:
    """The recipe of (method, setting) for `model`: the paper's, adapted to a tiny model's widths."""
    if setting not in settings_for(method):
        raise ValueError(f"setting={setting!r} is not run with {method}; allowed: {settings_for(method)}")
    from ..quant import Recipe

    return str(Recipe.paper(method, PAPER_SETTING[setting], model=model))


def paper_drops(method: str, setting: str, paper_model: str = "LLaDA-8B-Instruct") -> dict:
    """The paper's relative drop (%) per category for this method and setting: general from Table 1/2,
    math and code from Table 3/4. Empty for RTN (not in the paper)."""
    from ..paper.tables import category_drops

    if setting not in settings_for(method):
        raise ValueError(f"setting={setting!r} is not run with {method}; allowed: {settings_for(method)}")
    return category_drops(method, setting, paper_model)


def accuracy_by_category(results: pd.DataFrame) -> pd.Series:
    """Mean value per category of an evaluate() frame (task, category, metric, value, stderr)."""
    if results.empty:
        raise ValueError("the evaluation returned no rows")
    return results.groupby("category")["value"].mean()


def accuracy_table(fp: pd.Series, quantized: pd.Series, paper: dict) -> pd.DataFrame:
    """category, FP and quantized accuracy (%), our drop and the paper's drop (%), with bands."""
    from ..paper.tables import band

    rows = []
    for category in fp.index:
        ours = (quantized[category] / fp[category] - 1.0) * 100.0 if fp[category] > 0 else float("nan")
        theirs = paper.get(category, float("nan"))
        rows.append({"category": category, "fp": fp[category] * 100, "quantized": quantized[category] * 100,
                     "drop": ours, "band": band(ours), "paper_drop": theirs, "paper_band": band(theirs)})
    return pd.DataFrame(rows)


@dataclass
class DashboardState:
    model: str
    method: str
    setting: str
    recipe: str
    accuracy: pd.DataFrame  # accuracy_table
    activations: pd.DataFrame  # layer, role, absmax_fp, absmax_q
    quant_error: Optional[float] = None  # mean relative output error over layers (QuantReport)


@dataclass
class DashboardModel:
    """Everything the dashboard computes, cached per (model, method, setting).

    evaluate_fn(model, tok) -> DataFrame(task, category, metric, value, stderr); default TinyBench with
    `limit` documents per task. Activation ranges use `calib_n` windows of the model's calibration set."""

    limit: Optional[int] = 8
    evaluate_fn: Optional[Callable] = None
    decoding: Optional[dict] = None  # sampler keywords for the default evaluation (default: TINY_DECODING)
    calib_n: int = 4
    calib_len: int = 64
    device: str = "cpu"
    _cache: dict = field(default_factory=dict)
    _base: dict = field(default_factory=dict)

    def evaluate(self, model, tok) -> pd.DataFrame:
        if self.evaluate_fn is not None:
            return self.evaluate_fn(model, tok)
        from ..eval import evaluate
        from ..sweeps.tasks import TINY_DECODING

        decoding = TINY_DECODING if self.decoding is None else self.decoding
        return evaluate(model, tok, tasks=["tinybench"], limit=self.limit, progress=False, **decoding)

    def base(self, name: str) -> dict:
        """FP model, tokenizer, FP accuracy and FP activation ranges (computed once per model)."""
        if name not in self._base:
            from ..models import load_model

            model, tok = load_model(name, device=self.device)
            calib = self.calibration(tok)
            self._base[name] = {"model": model, "tok": tok, "calib": calib,
                                "accuracy": accuracy_by_category(self.evaluate(model, tok)),
                                "absmax": activation_ranges(model, calib)}
        return self._base[name]

    def calibration(self, tok):
        from ..calibration import get_calibration

        source = "tiny" if getattr(tok, "mask_token_id", None) is not None and len(tok) < 5000 else "text"
        return get_calibration(source, tok, n_samples=self.calib_n, seq_len=self.calib_len, seed=1)

    def state(self, name: str, method: str, setting: str) -> DashboardState:
        key = (name, method, setting)
        if key not in self._cache:
            from ..quant import quantize

            base = self.base(name)
            recipe = recipe_string(name, method, setting)
            qmodel, report = quantize(base["model"], recipe, tok=base["tok"])
            q_acc = accuracy_by_category(self.evaluate(qmodel, base["tok"]))
            acts = base["absmax"].rename(columns={"absmax": "absmax_fp"})
            acts["absmax_q"] = activation_ranges(qmodel, base["calib"])["absmax"].to_numpy()
            errors = [r.error for r in getattr(report, "layers", []) if r.error == r.error]
            self._cache[key] = DashboardState(
                name, method, setting, recipe, accuracy_table(base["accuracy"], q_acc, paper_drops(method, setting)),
                acts, float(np.mean(errors)) if errors else None)
        return self._cache[key]


def activation_ranges(model, calib) -> pd.DataFrame:
    """absmax of the input of every (layer, role) in ACT_ROLES over the calibration windows."""
    from ..activations import collect_activations

    stats = collect_activations(model, calib, roles=ACT_ROLES, progress=False)
    return stats.frame()[["layer", "role", "absmax"]].reset_index(drop=True)
