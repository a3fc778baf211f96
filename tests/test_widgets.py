"""The dashboard, headless: setting widget values recomputes the right state and redraws."""
import matplotlib

matplotlib.use("Agg")

import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from dllmq.sweeps.fidelity import fidelity, heldout_windows  # noqa: E402
from dllmq.lab import n10_reproduce_findings as n10  # noqa: E402
from dllmq.viz import widgets  # noqa: E402


def test_settings_and_recipes():
    assert n10.settings_for("gptq") == ("W4A16", "W3A16")
    assert n10.settings_for("duquant") == ("W8A8", "W4A4")
    assert n10.settings_for("rtn") == ("W4A16", "W3A16", "W8A8", "W4A4")
    with pytest.raises(ValueError, match="allowed"):
        n10.settings_for("bnb")
    with pytest.raises(ValueError, match="not run with"):
        n10.recipe_string("tiny-random", "gptq", "W4A4")
    assert n10.recipe_string("tiny-random", "gptq", "W4A16").startswith("gptq:w4a16g64:")  # tiny widths
    assert n10.paper_drops("gptq", "W3A16") == {"general": -2.4, "math": -5.0, "code": -14.7}
    assert n10.paper_drops("awq", "W4A16")["general"] == -1.2  # the corrected misprint, not -0.1
    assert n10.paper_drops("rtn", "W4A4") == {}


def test_accuracy_table_drops_and_bands():
    fp = pd.Series({"general": 0.8, "math": 0.5})
    q = pd.Series({"general": 0.79, "math": 0.4})
    table = n10.accuracy_table(fp, q, {"general": -0.5, "math": -12.0})
    row = table.set_index("category")
    assert row.loc["general", "drop"] == pytest.approx(-1.25) and row.loc["general", "band"] == "moderate"
    assert row.loc["math", "drop"] == pytest.approx(-20.0) and row.loc["math", "band"] == "significant"
    assert row.loc["general", "paper_band"] == "negligible" and row.loc["math", "fp"] == pytest.approx(50.0)


class AgreementEval:
    """A fast stand-in for TinyBench: 1 - relative logit error vs the FP model on masked text, per category.
    It depends on the model, so FP scores 1 and a quantized model scores lower."""

    def __init__(self):
        self.calls = []
        self.fp = None

    def __call__(self, model, tok):
        self.calls.append(model)
        if self.fp is None:
            self.fp = model
        ids = heldout_windows(tok, "tiny-random", n=2, seq_len=32)
        agree = 1.0 - min(1.0, fidelity(self.fp, model, ids, tok.mask_token_id)["logit_rel_err"][0])
        return pd.DataFrame([{"task": "t_general", "category": "general", "metric": "acc", "value": agree},
                             {"task": "t_math", "category": "math", "metric": "acc", "value": agree / 2}])


def test_dashboard_updates_when_widgets_change():
    data = n10.DashboardModel(evaluate_fn=AgreementEval(), calib_n=2, calib_len=32)
    dash = widgets.build_dashboard(data, models=("tiny-random",), method="rtn", setting="W4A16")
    assert dash.renders == 1 and dash.state.recipe.startswith("rtn:w4a16")
    acc = dash.state.accuracy.set_index("category")
    assert acc.loc["general", "fp"] == pytest.approx(100.0) and pd.isna(acc.loc["general", "paper_drop"])
    acts = dash.state.activations
    assert set(acts["role"]) == set(n10.ACT_ROLES) and (acts["absmax_fp"] > 0).all()
    assert len(dash.figure.axes) == 2

    dash.controls["setting"].value = "W3A16"
    assert dash.renders == 2 and dash.state.recipe.startswith("rtn:w3a16")
    # a method change restricts the bit-widths and redraws once
    dash.controls["method"].value = "smoothquant"
    assert dash.renders == 3
    assert tuple(dash.controls["setting"].options) == ("W8A8", "W4A4")
    assert dash.state.method == "smoothquant" and dash.state.setting == "W8A8"
    dash.controls["setting"].value = "W4A4"
    w4a4 = dash.state.accuracy.set_index("category")
    assert w4a4.loc["math", "paper_drop"] == -95.4 and w4a4.loc["general", "paper_drop"] == -29.0  # Tables 4, 2
    assert w4a4.loc["general", "quantized"] < 100.0  # W4A4 changes the predictions
    # smoothing moves activation ranges between the norm and the linear inputs
    acts = dash.state.activations
    assert not (acts["absmax_q"] == acts["absmax_fp"]).all()
    dash.controls["method"].value = "rtn"  # W4A4 is also an RTN setting: it is kept
    assert dash.state.setting == "W4A4" and dash.state.recipe.startswith("rtn:w4a4")
    # cached: a state computed before is not quantized or evaluated again
    n_calls = len(data.evaluate_fn.calls)
    dash.controls["setting"].value = "W4A16"
    assert len(data.evaluate_fn.calls) == n_calls and dash.state.recipe.startswith("rtn:w4a16")
    assert dash.renders == 6


def test_draw_dashboard_returns_a_figure():
    state = n10.DashboardState(
        "m", "gptq", "W4A16", "gptq:w4a16g64",
        n10.accuracy_table(pd.Series({"general": 0.5}), pd.Series({"general": 0.4}), {"general": -1.0}),
        pd.DataFrame({"layer": [0, 1], "role": ["down", "down"], "absmax_fp": [1.0, 9.0], "absmax_q": [1.1, 8.0]}))
    fig = widgets.draw_dashboard(state)
    assert len(fig.axes) == 2 and fig.axes[1].get_yscale() == "log"
