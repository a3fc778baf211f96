"""`dllmq reproduce`: exactly a table's cells, the tiny analogue end to end on a CPU, resume, check."""
import pandas as pd
import pytest

from dllmq import paper
from dllmq.models import get_layout, load_model, tiny_default
from dllmq.quant import Recipe
from dllmq.sweeps import presets as grids
from dllmq.sweeps.reproduce import main, reproduce
from dllmq.sweeps.store import ResultStore


def suitable_group(model: str) -> int:
    """The largest of 128/64/32/16 dividing every linear's input width (what the fitter must pick)."""
    net, _ = load_model(model, device="cpu")
    widths = {lin.in_features for block in get_layout(net).blocks for lin in block.linears.values()}
    return next(g for g in (128, 64, 32, 16) if all(w % g == 0 for w in widths))


@pytest.mark.parametrize("table,model,n_recipes,tasks", [
    (1, "GSAI-ML/LLaDA-8B-Base", 5, ["winogrande", "piqa", "arc_challenge", "arc_easy", "hellaswag", "mmlu"]),
    (2, "GSAI-ML/LLaDA-8B-Instruct", 7, ["winogrande", "piqa", "arc_challenge", "arc_easy", "mmlu"]),
    (3, "GSAI-ML/LLaDA-8B-Instruct", 5, ["gsm8k", "minerva_math", "humaneval", "mbpp"]),
    (4, "GSAI-ML/LLaDA-8B-Base", 7, ["gsm8k", "minerva_math", "humaneval", "mbpp"]),
    (5, "Dream-org/Dream-v0-Base-7B", 5, ["winogrande", "piqa", "arc_challenge", "arc_easy"]),
])
def test_paper_grid_is_exactly_the_table(table, model, n_recipes, tasks):
    cells = grids.get_preset(f"table{table}").cells(model)
    recipes = list(dict.fromkeys(c.recipe for c in cells))
    assert len(cells) == n_recipes * len(tasks) and recipes[0] == "fp"
    assert list(dict.fromkeys(c.task for c in cells)) == tasks
    # every non-FP row of the printed table, configured exactly as Recipe.paper does
    rows = [(m, s) for _, s, m in paper.table(table).index if m != "FP"]
    expected = {str(Recipe.paper(m.lower(), grids.setting_string(s))) for m, s in rows}
    assert set(recipes[1:]) == expected
    assert all(Recipe.parse(r) == Recipe.paper(Recipe.parse(r).method, Recipe.parse(r).setting) for r in recipes[1:])


def test_tiny_analogue_grid():
    model = tiny_default()
    cells = grids.get_preset("table3").cells("tiny", reduced=True)
    assert {c.model for c in cells} == {model}
    assert {c.task for c in cells} == {"tinybench_math", "tinybench_code"}
    recipes = list(dict.fromkeys(c.recipe for c in cells))
    assert recipes[0] == "fp" and len(recipes) == 3  # FP + the first method of each bit setting
    group = suitable_group(model)
    for r in map(Recipe.parse, recipes[1:]):
        assert r.calib.source == "tiny" and r.group_size == min(128, group)


def test_reproduce_tiny_end_to_end_and_resume(tmp_path, capsys):
    store = tmp_path / "t1.jsonl"
    args = ["table1", "--model", "tiny", "--reduced", "--limit", "3", "--store", str(store), "--no-progress"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "Table 1" in out and "paper" in out and "ours" in out and "3 run now" in out
    frame = ResultStore(store).to_frame()
    assert set(frame["task"]) == {"tinybench_general"} and len(frame) == 3
    assert frame["value"].between(0, 1).all()
    # a second run finds every cell stored, reruns nothing and prints the same comparison
    result, _ = reproduce(1, "tiny", store=str(store), limit=3, reduced=True, progress=False, show=False)
    assert isinstance(result, pd.DataFrame)
    assert ("FP", "FP") in result.index and result.attrs["paper_model"] == "LLaDA-8B-Instruct"
    row = result.loc[("W4A16 g" + str(min(128, suitable_group(tiny_default()))), "GPTQ")]
    assert row[("General drop", "paper")] == 0.3  # LLaDA-8B-Instruct W4A16 GPTQ: up 0.3%
    assert len(ResultStore(store).path.read_text().splitlines()) == 3


def test_check_and_bad_arguments(capsys):
    assert main(["check"]) == 0
    out = capsys.readouterr().out
    assert "ARC-E" in out and "59.2" in out and "38.6" in out
    assert main(["table9"]) == 2
    assert "allowed" in capsys.readouterr().err


# ---- studies, figures, findings, demo table, MC variance -------------------------------------------------
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import numpy as np  # noqa: E402

from dllmq.paper import findings  # noqa: E402
from dllmq.paper.compare import calibration_kind, strip_calibration  # noqa: E402
from dllmq.sweeps import demo as demo_grid  # noqa: E402
from dllmq.sweeps import studies  # noqa: E402
from dllmq.viz import results as figures  # noqa: E402


def test_study_presets_build_their_grids():
    tiny = tiny_default()
    steps = studies.steps_x_bits(tiny)
    assert {c.options["steps"] for c in steps} == set(studies.STEPS_TINY)
    assert {c.options["gen_length"] for c in steps} == {32}  # gen length fixed, steps vary
    gpu = studies.steps_x_bits("GSAI-ML/LLaDA-8B-Instruct")
    assert {c.task for c in gpu} == {"gsm8k"} and {c.options["steps"] for c in gpu} == set(studies.STEPS_GPU)
    assert all(256 % c.options["block_length"] == 0 and c.options["steps"] % (256 // 32) == 0 for c in gpu)
    rem = studies.remasking_x_bits(tiny)
    assert {c.options["remasking"] for c in rem} == {"low_confidence", "random"}
    calib = studies.calibration(tiny)
    kinds = {calibration_kind(c.recipe) for c in calib if c.recipe != "fp"}
    assert kinds == {"clean", "mask0.5", "uniform"}
    assert all(Recipe.parse(c.recipe).calib.mask_ratio in (None, 0.5, "uniform") for c in calib if c.recipe != "fp")
    low = studies.lowbit(tiny)
    assert {c.options["backend"] for c in low} == set(studies.LOWBIT_FP + studies.LOWBIT_Q)
    assert {c.model for c in studies.dream_wa("tiny")} == {"tiny-random-dream"}
    dream_gpu = studies.dream_wa("Dream-org/Dream-v0-Base-7B")
    assert len(dream_gpu) == 7 * 4 and {c.task for c in dream_gpu} == {"winogrande", "piqa", "arc_challenge", "arc_easy"}
    for name in studies.STUDIES:
        assert 0 < len(grids.get_preset(name).cells("tiny", reduced=True)) <= len(grids.get_preset(name).cells("tiny"))


def _store_frame(rows):
    frame = pd.DataFrame(rows)
    for column, default in (("variant", ""), ("stderr", None), ("n", None), ("category", None)):
        if column not in frame:
            frame[column] = default
    return frame


def test_figures_draw_from_store_frames():
    rows = []
    for recipe, scale in (("fp", 1.0), ("gptq:w3a16g32", 0.8)):
        for steps in (4, 8, 16, 32):
            for remasking in ("low_confidence", "random"):
                rows.append({"model": "tiny", "recipe": recipe, "task": "tinybench_math", "metric": "exact_match",
                             "category": "math", "variant": f"remasking={remasking},steps={steps}",
                             "value": scale * steps / 32})
    frame = _store_frame(rows)
    fig = figures.plot_steps_x_bits(frame)
    lines = fig.axes[0].get_lines()
    assert len(lines) == 2 and np.allclose(lines[0].get_ydata(), [12.5, 25, 50, 100])  # FP, mean over remasking
    fig = figures.plot_remasking_x_bits(frame)
    assert len(fig.axes[0].patches) == 4
    cal = _store_frame([{"model": "tiny", "recipe": r, "task": "t", "metric": "acc", "category": "general", "value": v}
                        for r, v in (("fp", 0.9), ("gptq:w3a16g32:calib=tiny", 0.7), ("gptq:w3a16g32:calib=tiny,mask=uniform", 0.8))])
    fig = figures.plot_calibration(cal)
    heights = sorted(p.get_height() for p in fig.axes[0].patches if p.get_height() > 0)
    assert np.allclose(heights, [70, 80, 90])
    assert strip_calibration("gptq:w3a16g32:calib=tiny,mask=0.5") == "gptq:w3a16g32:calib=tiny"
    mem = _store_frame([{"model": "tiny", "recipe": "fp", "task": "memory", "metric": m, "variant": f"backend={b}",
                         "value": v} for b in ("fp32", "nf4") for m, v in (("weight_mib", 1.0 if b == "fp32" else 0.15),
                                                                         ("forward_ms", 3.0))])
    assert len(figures.plot_lowbit(mem).axes) == 2
    with pytest.raises(ValueError, match="steps"):
        figures.plot_steps_x_bits(cal)


def _tiny_frame():
    rows = []
    scores = {"fp": (0.8, 0.6, 0.5), "gptq:w4a16g32": (0.8, 0.57, 0.45), "gptq:w3a16g32": (0.76, 0.4, 0.3),
              "awq:w3a16g32": (0.7, 0.3, 0.2), "smoothquant:w4a4": (0.4, 0.0, 0.0)}
    for recipe, values in scores.items():
        for cat, v in zip(("general", "math", "code"), values):
            rows.append({"model": "tiny", "recipe": recipe, "task": f"tinybench_{cat}", "metric": "acc",
                         "category": cat, "value": v})
    return _store_frame(rows)


def test_findings_pair_paper_and_tiny_drops():
    frame = _tiny_frame()
    ours = findings.tiny_evidence(frame, "F1").set_index(["method", "setting", "category"])["drop"]
    assert ours[("gptq", "W3A16", "math")] == pytest.approx(-100 / 3)
    assert ("smoothquant", "W4A4", "math") not in ours.index  # not an F1 row
    theirs = findings.paper_evidence("F1")
    assert len(theirs) == 2 * 4 * 3  # 2 models x 4 rows x 3 categories
    inst = theirs.set_index(["model", "method", "setting", "category"])["drop"]
    assert inst[("LLaDA-8B", "gptq", "W3A16", "math")] == -15.7
    dream = findings.paper_evidence("F7").set_index(["method", "setting"])["drop"]
    assert dream[("awq", "W4A16")] == -4.3
    assert len(figures.plot_finding(frame, "F3").axes) == 3
    assert len(figures.plot_finding(None, "F6").axes) == 3
    with pytest.raises(ValueError, match="allowed"):
        findings.get_finding("F9")


def test_demo_results_table_and_markdown():
    frame = _tiny_frame()
    table = demo_grid.results_table(frame)
    assert list(table["method"])[0] == "FP" and pd.isna(table.loc[0, "drop"])
    row = table.set_index("recipe").loc["gptq:w3a16g32"]
    assert row["avg"] == pytest.approx(np.mean([76, 40, 30]))
    assert row["drop"] == pytest.approx((np.mean([76, 40, 30]) / np.mean([80, 60, 50]) - 1) * 100)
    assert row["band"] == "significant"
    md = demo_grid.to_markdown(table)
    assert md.count("\n") == len(table) + 2 and "| GPTQ | W3A16 g32 |" in md
    fig = figures.plot_demo_drops(table)
    assert len(fig.axes) >= 2
    recipes = demo_grid.demo_recipes("tiny-random")
    methods = [r.split(":")[0] for r in recipes[1:]]
    assert methods.count("rtn") == 4 and methods.count("gptq") == methods.count("awq") == 2
    assert all(Recipe.parse(r).a_bits == 16 for r in recipes if r.startswith(("gptq", "awq")))
    assert all(Recipe.parse(r).a_bits < 16 for r in recipes if r.startswith(("smoothquant", "quarot", "duquant")))


def test_mc_spread_shrinks_with_samples(tiny_llada):
    from dllmq.lab.n09_evaluating_dllms import mc_spread

    model, tok = tiny_llada
    spread = mc_spread(model, tok, [("ab", " cdef"), ("ab", "c")], sample_counts=(1, 64), seeds=range(4))
    assert list(spread.groupby("pair")["tokens"].first()) == [5, 1]  # character tokenizer
    multi = spread[spread["pair"] == 0].set_index("n_samples")
    assert multi.loc[64, "std"] < multi.loc[1, "std"] / 3  # 1/sqrt(64) = 1/8 in expectation
    assert multi.loc[64, "rmse"] < multi.loc[1, "rmse"]
    single = spread[spread["pair"] == 1]
    assert (single["std"] == 0).all() and np.allclose(single["mean"], single["exact"])
