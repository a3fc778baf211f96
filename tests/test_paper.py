"""The paper as data: tables round-trip from the csv, the misprint check flags exactly the known rows,
bands, and the paper-vs-measured comparison."""
import math

import numpy as np
import pandas as pd
import pytest

from dllmq.paper import tables as paper
from dllmq.paper.compare import compare, paper_model_of, recipe_row


@pytest.mark.parametrize("n", paper.TABLES)
def test_tables_round_trip_from_the_csv(n):
    raw = paper.paper_results()
    raw = raw[raw.table == f"T{n}"].reset_index(drop=True)
    back = paper.to_long(paper.table(n), n)
    key = ["model", "setting", "method", "metric"]
    merged = raw.merge(back, on=["table", *key], how="outer", suffixes=("_csv", "_table"), indicator=True)
    assert (merged["_merge"] == "both").all() and len(merged) == len(raw)
    both = merged[["value_csv", "value_table"]].to_numpy()
    assert np.array_equal(np.isnan(both[:, 0]), np.isnan(both[:, 1]))
    finite = ~np.isnan(both[:, 0])
    assert np.array_equal(both[finite, 0], both[finite, 1])
    # signs survive (-0.0 is the paper's "down 0.0%")
    assert all(math.copysign(1, a) == math.copysign(1, b) for a, b in both[finite])


def test_table_shapes_match_the_paper():
    t1 = paper.table(1)
    assert list(t1.columns) == ["WinoGrande", "PIQA", "ARC-C", "ARC-E", "Hellaswag", "MMLU", "Avg", "Drop"]
    assert t1.shape == (10, 8) and t1.index.names == ["Model", "Setting", "Method"]
    assert t1.loc[("LLaDA-8B", "W4A16 g128", "GPTQ"), "ARC-C"] == 47.9
    t3 = paper.table(3)
    assert list(t3.columns) == ["GSM8K", "Math", "Math Avg", "Math Drop", "HumanEval", "MBPP", "Code Avg", "Code Drop"]
    assert paper.table(2).shape == (14, 7) and paper.table(4).shape == (14, 8) and paper.table(5).shape == (5, 6)
    assert list(paper.table(5).index.get_level_values(2)) == ["FP", "GPTQ", "AWQ", "GPTQ", "AWQ"]  # printed order
    assert paper.paper_value(4, "LLaDA-8B-Instruct", "W4A4", "DuQuant", "GSM8K") == 77.3
    printed = paper.format_table(paper.table(4))
    assert printed.loc[("LLaDA-8B", "W8A8", "QuaRot"), "Code Drop"] == "↓ 0.0%"
    assert printed.loc[("LLaDA-8B", "W8A8", "DuQuant"), "Math Drop"] == "↑ 0.4%"
    with pytest.raises(ValueError, match="allowed"):
        paper.table(6)


def test_check_flags_exactly_the_known_misprints():
    flagged = paper.misprints()
    keys = set(zip(flagged.table, flagged.model, flagged.setting, flagged.method, flagged.metric))
    assert keys == set(paper.KNOWN_MISPRINTS)
    assert flagged.known.all()
    by_metric = flagged.set_index("metric")
    assert by_metric.loc["general_drop", "recomputed"] == pytest.approx(-1.16, abs=0.01)  # printed down 0.1%
    assert by_metric.loc["general_avg", "recomputed"] == pytest.approx(61.24)  # printed 59.2
    assert by_metric.loc["code_avg", "recomputed"] == pytest.approx(37.15)  # printed 38.6
    full = paper.check()
    assert len(full) == 77 + 64  # every printed Avg (77) and every non-FP Drop (64) is checked
    assert (full[~full.flagged]["diff"].abs() <= full[~full.flagged]["tolerance"]).all()


def test_check_detects_a_planted_error(monkeypatch):
    raw = paper._raw().copy()
    hit = (raw.table == "T3") & (raw.model == "LLaDA-8B") & (raw.method == "AWQ") & (raw.metric == "GSM8K")
    raw.loc[hit & (raw.setting == "W4A16 g128"), "value"] = 60.0
    monkeypatch.setattr(paper, "_raw", lambda: raw)
    flagged = paper.misprints(3)
    assert set(flagged.metric) == {"math_avg", "math_drop"} and not flagged.known.any()


def test_table1_average_excludes_arc_e():
    rule = paper.table1_average_rule()
    assert rule == {"rows": 10, "match_without_arc_e": 10, "match_with_arc_e": 0}
    assert "ARC-E" in paper.report()


def test_corrected_table_uses_recomputed_values():
    fixed = paper.table(2, corrected=True)
    assert fixed.loc[("LLaDA-8B", "W4A4", "QuaRot"), "Avg"] == 61.2
    assert paper.table(2).loc[("LLaDA-8B", "W4A4", "QuaRot"), "Avg"] == 59.2


@pytest.mark.parametrize("drop,name", [(0.5, "negligible"), (-0.99, "negligible"), (-1.0, "moderate"),
                                       (-4.0, "moderate"), (-4.01, "significant"), (-37.3, "significant")])
def test_bands(drop, name):
    assert paper.band(drop) == name
    assert paper.band(float("nan")) == ""


def test_recipe_and_model_labels():
    assert recipe_row("gptq:w4a16g128") == ("W4A16 g128", "GPTQ")
    assert recipe_row("smoothquant:w8a8:q=8,kv=8") == ("W8A8", "SmoothQuant")
    assert recipe_row("fp") == ("FP", "FP")
    with pytest.raises(ValueError, match="recipe"):
        recipe_row("gptq")
    assert paper_model_of("GSAI-ML/LLaDA-8B-Base") == "LLaDA-8B"
    assert paper_model_of("GSAI-ML/LLaDA-8B-Instruct") == "LLaDA-8B-Instruct"
    assert paper_model_of("Dream-org/Dream-v0-Base-7B") == "Dream-7B"


def _measured_from_paper(table, model, lm_names, hub_id):
    rows = []
    for (setting, method), r in paper.table(table).loc[model].iterrows():
        recipe = "fp" if method == "FP" else f"{method.lower()}:{setting.lower().replace(' ', '')}"
        for column, task in lm_names.items():
            rows.append({"model": hub_id, "recipe": recipe, "task": task, "metric": "acc,none",
                         "value": r[column] / 100})
    return pd.DataFrame(rows)


def test_compare_recomputes_the_paper_from_its_own_scores(capsys):
    names = {"GSM8K": "gsm8k", "Math": "minerva_math", "HumanEval": "humaneval", "MBPP": "mbpp"}
    measured = _measured_from_paper(3, "LLaDA-8B", names, "GSAI-ML/LLaDA-8B-Base")
    result = compare(measured, table=3)
    assert result.attrs["paper_model"] == "LLaDA-8B"
    assert "Table 3" in capsys.readouterr().out
    row = result.loc[("W3A16 g128", "GPTQ")]
    assert row[("GSM8K", "ours")] == pytest.approx(63.3) and row[("GSM8K", "paper")] == 63.3
    assert row[("Math drop", "ours")] == pytest.approx(row[("Math drop", "paper")], abs=0.1)
    assert row[("Math band", "ours")] == row[("Math band", "paper")] == "significant"
    assert result.loc[("FP", "FP"), ("Code drop", "ours")] is None or pd.isna(result.loc[("FP", "FP"), ("Code drop", "ours")])


def test_compare_table1_uses_the_no_arc_e_average():
    names = {"WinoGrande": "winogrande", "PIQA": "piqa", "ARC-C": "arc_challenge", "ARC-E": "arc_easy",
             "Hellaswag": "hellaswag", "MMLU": "mmlu"}
    measured = _measured_from_paper(1, "LLaDA-8B-Instruct", names, "GSAI-ML/LLaDA-8B-Instruct")
    result = compare(measured, table=1, show=False)
    assert result.loc[("FP", "FP"), ("General avg", "ours")] == pytest.approx(65.68)
    # the misprinted drop (down 0.1%) differs from what its own scores give (down 1.2%)
    awq = result.loc[("W4A16 g128", "AWQ")]
    assert awq[("General drop", "paper")] == -0.1 and awq[("General drop", "ours")] == pytest.approx(-1.157, abs=1e-3)


def test_compare_tiny_analogue_pairs_drops_only():
    measured = pd.DataFrame([
        {"model": "tiny", "recipe": "fp", "task": "arith", "metric": "acc", "value": 0.8, "category": "math"},
        {"model": "tiny", "recipe": "fp", "task": "copy", "metric": "acc", "value": 0.6, "category": "code"},
        {"model": "tiny", "recipe": "gptq:w3a16g32", "task": "arith", "metric": "acc", "value": 0.6, "category": "math"},
        {"model": "tiny", "recipe": "gptq:w3a16g32", "task": "copy", "metric": "acc", "value": 0.6, "category": "code"},
    ])
    result = compare(measured, table=3, show=False)
    row = result.loc[("W3A16 g32", "GPTQ")]
    assert row[("Math drop", "ours")] == pytest.approx(-25.0) and row[("Math band", "ours")] == "significant"
    assert row[("Code drop", "ours")] == pytest.approx(0.0) and row[("Code band", "ours")] == "negligible"
    assert row[("Math drop", "paper")] == -5.0  # the paper's W3A16 g128 GPTQ row for LLaDA-8B-Instruct
    assert ("arith", "paper") not in result.columns
    with pytest.raises(ValueError, match="paper_model"):
        compare(measured, table=3, paper_model="GPT-2", show=False)
    with pytest.raises(ValueError, match="lacks columns"):
        compare(measured.drop(columns="recipe"), table=3, show=False)
