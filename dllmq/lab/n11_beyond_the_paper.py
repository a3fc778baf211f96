"""Notebook 11 (beyond the paper): a readable view of the studies' store records (the studies themselves
are sweep presets, `dllmq.sweeps.studies`; their figures `dllmq.viz.results.plot_study`)."""
from __future__ import annotations

import pandas as pd

from ..paper.compare import calibration_kind, recipe_label


def tidy(frame: pd.DataFrame) -> pd.DataFrame:
    """A readable view of store records: method/setting label, calibration, variant, task, metric, value."""
    out = pd.DataFrame({"recipe": frame["recipe"].map(recipe_label),
                        "calibration": frame["recipe"].map(calibration_kind), "variant": frame["variant"],
                        "task": frame["task"], "metric": frame["metric"], "value": frame["value"],
                        "stderr": frame["stderr"]})
    return out.sort_values(["task", "metric", "recipe", "calibration", "variant"]).reset_index(drop=True)
