"""Paper task presets (Table A1, Sec. 4.1) and their hand-off to lm-eval."""
import pandas as pd
import pytest

from dllmq.eval import presets
from dllmq.paper import tables as paper


def test_llada_presets_match_the_paper():
    tasks = {t.name: t for t in presets.paper_tasks("llada")}
    assert [t.lm_eval_task for t in tasks.values()] == ["winogrande", "piqa", "arc_challenge", "arc_easy", "hellaswag",
                                                        "mmlu", "gsm8k", "minerva_math", "humaneval", "mbpp"]
    for name in ("WinoGrande", "PIQA", "ARC-C", "ARC-E", "Hellaswag"):
        t = tasks[name]
        assert (t.kind, t.num_fewshot, t.mc_samples, t.category) == ("likelihood", 0, 128, "general")
    assert (tasks["MMLU"].num_fewshot, tasks["MMLU"].mc_samples) == (5, 1)
    # Table A1: shots, gen length, steps, block length
    table_a1 = {"GSM8K": (4, 256, 256, 32), "Math": (0, 256, 256, 64), "HumanEval": (0, 512, 512, 32),
                "MBPP": (3, 512, 512, 32)}
    for name, expected in table_a1.items():
        t = tasks[name]
        assert (t.num_fewshot, t.gen_length, t.steps, t.block_length) == expected
        assert t.steps == t.gen_length  # one token per step
        assert t.gen_length % t.block_length == 0
    assert tasks["HumanEval"].unsafe_code and tasks["MBPP"].unsafe_code and not tasks["GSM8K"].unsafe_code
    assert tasks["GSM8K"].metrics[0] == "exact_match,flexible-extract"
    llada = presets.DECODING["llada"]
    assert (llada.cfg_scale, llada.temperature, llada.remasking) == (0.0, 0.0, "low_confidence")


def test_dream_presets():
    dream = presets.DECODING["dream"]
    assert (dream.max_new_tokens, dream.cfg_scale, dream.temperature, dream.top_p, dream.alg) == (128, 1.0, 0.0, 0.95, "entropy")
    assert [t.name for t in presets.paper_tasks("dream")] == ["WinoGrande", "PIQA", "ARC-C", "ARC-E"]
    assert all(t.mc_samples == 128 and t.gen_length == 128 for t in presets.paper_tasks("dream"))
    settings = presets.sampler_settings(presets.get_task("gsm8k"), "llada")
    assert settings == {"steps": 256, "gen_length": 256, "block_length": 32, "temperature": 0.0, "cfg_scale": 0.0,
                        "remasking": "low_confidence", "sampler_mode": "official"}


def test_table_tasks_are_the_paper_columns():
    for n in paper.TABLES:
        names = [t.name for t in presets.table_tasks(n)]
        assert names == list(paper.COLUMNS[n])
    assert presets.table_tasks(5)[0].gen_length == 128  # Table 5 is Dream


def test_lookup_errors_name_the_allowed_values():
    assert presets.get_task("gsm8k").name == presets.get_task("GSM8K").name == "GSM8K"
    with pytest.raises(ValueError, match="allowed"):
        presets.get_task("hellaswag", "dream")
    with pytest.raises(ValueError, match="family"):
        presets.paper_tasks("gpt")
    with pytest.raises(ValueError, match="table"):
        presets.table_tasks(9)
    assert presets.family_of_name("Dream-org/Dream-v0-Base-7B") == "dream"
    assert presets.family_of_name("GSAI-ML/LLaDA-8B-Base") == "llada"


def test_lm_eval_kwargs_and_metric_pick():
    he = presets.get_task("humaneval")
    kw = presets.lm_eval_kwargs(he, limit=10)
    assert kw["tasks"] == ["humaneval"] and kw["num_fewshot"] == 0 and kw["confirm_run_unsafe_code"]
    assert "confirm_run_unsafe_code" not in presets.lm_eval_kwargs(presets.get_task("piqa"))
    gsm = presets.get_task("gsm8k")
    entry = {"alias": "gsm8k", "exact_match,strict-match": 0.7, "exact_match_stderr,strict-match": 0.01,
             "exact_match,flexible-extract": 0.75, "exact_match_stderr,flexible-extract": 0.02}
    assert presets.pick_metric(entry, gsm) == ("exact_match,flexible-extract", 0.75, 0.02)
    with pytest.raises(KeyError, match="present"):
        presets.pick_metric({"foo,none": 1.0}, gsm)
    frame = presets.preset_table()
    assert isinstance(frame, pd.DataFrame) and len(frame) == 10


def test_lm_for_builds_the_registered_dllmq_class(tiny_llada):
    from lm_eval.api.registry import get_model

    model, tok = tiny_llada
    lm = presets.lm_for(model, tok, presets.get_task("gsm8k"), "llada")
    assert isinstance(lm, get_model("dllmq"))
    assert (lm.gen_length, lm.steps, lm.block_length, lm.remasking, lm.cfg_scale) == (256, 256, 32, "low_confidence", 0.0)
    mc = presets.lm_for(model, tok, presets.get_task("mmlu"), "llada")
    assert (mc.mc_samples, mc.batch_size) == (1, 1)
    over = presets.lm_for(model, tok, presets.get_task("gsm8k"), "llada", steps=64, remasking="random")
    assert (over.steps, over.gen_length, over.remasking) == (64, 256, "random")


def test_run_paper_task_reads_lm_eval_results(tiny_llada, monkeypatch):
    """The lm-eval hand-off: the task's settings go in, the paper's metric comes out (lm-eval stubbed:
    its real tasks need the hub)."""
    import lm_eval

    seen = {}

    def fake_simple_evaluate(model, **kwargs):
        seen.update(kwargs, model=model)
        return {"results": {"gsm8k": {"exact_match,flexible-extract": 0.5, "exact_match_stderr,flexible-extract": 0.1,
                                      "exact_match,strict-match": 0.4}},
                "n-samples": {"gsm8k": {"original": 1319, "effective": 8}}}

    monkeypatch.setattr(lm_eval, "simple_evaluate", fake_simple_evaluate)
    model, tok = tiny_llada
    rows = presets.run_paper_task(model, tok, presets.get_task("gsm8k"), limit=8)
    assert rows == [{"task": "gsm8k", "category": "math", "metric": "exact_match,flexible-extract", "value": 0.5,
                     "stderr": 0.1, "n": 8}]
    assert seen["tasks"] == ["gsm8k"] and seen["num_fewshot"] == 4 and seen["limit"] == 8
    assert seen["model"].steps == 256 and seen["model"].block_length == 32
