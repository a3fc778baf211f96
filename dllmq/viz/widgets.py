"""Dashboard (notebook 10): pick a model, a method and a bit-width; see accuracy per category next to the
paper's drops, and the activation ranges of the quantized model, updated live.

What it shows is computed by `dllmq.lab.n10_reproduce_findings` (`DashboardModel.state`: quantize +
evaluate + activation ranges, cached); `draw_dashboard` draws one state, and `build_dashboard` only wires
core ipywidgets (7.7 and 8.x) to them and redraws the matplotlib figure into an Output.
"""
from __future__ import annotations

from typing import Optional, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ..lab.n10_reproduce_findings import ACT_ROLES, METHOD_SETTINGS, DashboardModel, DashboardState, settings_for


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
