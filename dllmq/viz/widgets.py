"""Dashboard: pick a model, a method and a bit-width; see accuracy per category next to the paper's
drops, and the activation ranges of the quantized model, updated live.

The logic is plain functions (testable without a kernel): `settings_for`, `recipe_string`,
`paper_drops`, `DashboardModel.state` (quantize + evaluate + activation ranges, cached) and
`draw_dashboard`. `build_dashboard` only wires core ipywidgets (7.7 and 8.x) to them and redraws a
matplotlib figure into an Output.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import matplotlib.pyplot as plt
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
    from ..experiments.grids import recipe_for

    return recipe_for(model, method, PAPER_SETTING[setting])


def paper_drops(method: str, setting: str, paper_model: str = "LLaDA-8B-Instruct") -> dict:
    """The paper's relative drop (%) per category for this method and setting: general from Table 1/2,
    math and code from Table 3/4. Empty for RTN (not in the paper)."""
    from ..experiments.paper import category_drops

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
    from ..experiments.paper import band

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
        from ..experiments.grids import TINY_DECODING

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
            qmodel, report = quantize(copy.deepcopy(base["model"]), recipe, tok=base["tok"])
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


def draw_dashboard(state: DashboardState):
    """Left: accuracy per category, FP vs quantized, with our and the paper's drops.
    Right: input absmax per layer and role, FP (dashed) vs quantized (solid)."""
    fig, (ax_acc, ax_act) = plt.subplots(1, 2, figsize=(11, 3.8))
    acc = state.accuracy
    x = np.arange(len(acc))
    ax_acc.bar(x - 0.2, acc["fp"], 0.4, label="FP", color="#95a5a6")
    ax_acc.bar(x + 0.2, acc["quantized"], 0.4, label=state.recipe.split(":calib")[0], color="#2c7fb8")
    for i, row in acc.iterrows():
        paper = "n/a" if pd.isna(row["paper_drop"]) else f"{row['paper_drop']:+.1f}%"
        ours = "n/a" if pd.isna(row["drop"]) else f"{row['drop']:+.1f}%"
        ax_acc.annotate(f"ours {ours}\npaper {paper}", (i, max(row["fp"], row["quantized"]) + 2), ha="center",
                        fontsize=7)
    ax_acc.set_xticks(x, acc["category"])
    ax_acc.set_ylim(0, 119)
    ax_acc.set_ylabel("accuracy (%)")
    ax_acc.set_title(f"{state.model}: {state.method.upper()} {state.setting}")
    ax_acc.legend(fontsize=7, loc="lower right")
    acts = state.activations
    for j, role in enumerate(ACT_ROLES):
        part = acts[acts["role"] == role]
        if part.empty:
            continue
        ax_act.plot(part["layer"], part["absmax_fp"], ls="--", color=f"C{j}", alpha=0.7)
        ax_act.plot(part["layer"], part["absmax_q"], marker="o", color=f"C{j}", label=f"{role} input")
    ax_act.set_yscale("log")
    ax_act.set_xlabel("layer")
    ax_act.set_ylabel("max |activation| (dashed: FP)")
    ax_act.set_title("activation ranges of the quantized model")
    ax_act.legend(fontsize=7)
    fig.tight_layout()
    return fig


class Dashboard:
    """Dropdowns model / method / bit-width -> `draw_dashboard` into an Output. `.widget` to display."""

    def __init__(self, data: Optional[DashboardModel] = None, models: Sequence[str] = ("tiny",),
                 method: str = "gptq", setting: str = "W4A16"):
        import ipywidgets as w

        self.data = data or DashboardModel()
        self.controls = {
            "model": w.Dropdown(options=list(models), value=models[0], description="model"),
            "method": w.Dropdown(options=list(METHOD_SETTINGS), value=method, description="method"),
            "setting": w.Dropdown(options=list(settings_for(method)), value=setting, description="bits"),
        }
        self.out = w.Output()
        self.table = w.Output()
        self.state: Optional[DashboardState] = None
        self.figure = None  # the last figure drawn (closed; kept for inspection)
        self.renders = 0
        self._syncing = False
        self.controls["method"].observe(self._on_method, names="value")
        self.controls["model"].observe(self._on_change, names="value")
        self.controls["setting"].observe(self._on_change, names="value")
        self.widget = w.VBox([w.HBox(list(self.controls.values())), self.out, self.table])
        self.refresh()

    def _on_method(self, change) -> None:
        allowed = settings_for(change["new"])
        self._syncing = True  # one redraw for a method change, not one per option update
        try:
            current = self.controls["setting"].value
            self.controls["setting"].options = list(allowed)
            self.controls["setting"].value = current if current in allowed else allowed[0]
        finally:
            self._syncing = False
        self.refresh()

    def _on_change(self, change) -> None:
        if not self._syncing:
            self.refresh()

    def refresh(self) -> DashboardState:
        c = self.controls
        self.state = self.data.state(c["model"].value, c["method"].value, c["setting"].value)
        with self.out:
            self.out.clear_output(wait=True)
            self.figure = draw_dashboard(self.state)
            plt.show()
            plt.close(self.figure)
        with self.table:
            self.table.clear_output(wait=True)
            print(self.state.accuracy.round(2).to_string(index=False))
        self.renders += 1
        return self.state


def build_dashboard(data: Optional[DashboardModel] = None, models: Sequence[str] = ("tiny",), **kwargs) -> Dashboard:
    """The dashboard for the notebooks: `display(build_dashboard().widget)`."""
    return Dashboard(data, models, **kwargs)
