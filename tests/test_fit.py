"""The one fitter: Recipe.paper(method, setting, model=...) adapts a paper preset, explicitly, to a model's sizes."""
import pytest

from dllmq.quant import CalibSpec, Recipe
from dllmq.quant.presets import TINY_CALIB


def test_smollm2_sizes_get_explicit_fits(smollm2):
    model, _ = smollm2  # hidden 576 = 9 x 64, MLP 1536, 9 heads
    assert str(Recipe.paper("rtn", "w4a16g128", model=model)) == "rtn:w4a16g64"
    assert Recipe.paper("gptq", "w3a16g128", model=model).group_size == 64
    duquant = Recipe.paper("duquant", "w4a4", model=model, rotation_steps=16)
    assert duquant.knob("block_size") == 64 and duquant.knob("rotation_steps") == 16
    assert Recipe.paper("quarot", "w4a4", model=model).knob("hadamard_fallback") == "orthogonal"


def test_sizes_that_fit_keep_the_paper_preset_and_name_the_tiny_corpus(tiny_trained):
    model, _ = tiny_trained  # hidden 128, MLP 384: every paper setting divides it
    for method, setting in (("gptq", "w4a16g128"), ("duquant", "w4a4"), ("rtn", "w8a8")):
        fitted = Recipe.paper(method, setting, model=model)
        assert fitted == Recipe.paper(method, setting).with_(calib=TINY_CALIB)
    # a model object and its name fit to the same recipe
    assert Recipe.paper("quarot", "w4a4", model=model) == Recipe.paper("quarot", "w4a4", model="tiny")


def test_hub_ids_keep_the_paper_preset_and_overrides_apply_last():
    assert Recipe.paper("duquant", "w4a4", model="GSAI-ML/LLaDA-8B-Instruct") == Recipe.paper("duquant", "w4a4")
    r = Recipe.paper("gptq", "w3a16g128", model="tiny", calib={"mask_ratio": 0.5}, act_order=True)
    assert r.calib == CalibSpec("tiny", 16, 128, 0, 0.5) and r.knob("act_order") is True
    assert str(r) == "gptq:w3a16g128:act_order,calib=tiny,n=16,len=128,mask=0.5"


def test_unknown_setting_is_an_error(tiny_trained):
    with pytest.raises(ValueError, match="the paper runs gptq only at"):
        Recipe.paper("gptq", "w5a7", model=tiny_trained[0])


def test_demo_benchmark_and_notebook_helper_name_the_same_recipe():
    """One fitter: the demo grid, the quantization-time benchmark and the notebook-10 dashboard helper give
    the same recipe string for the same (method, setting, model) -- the results store's key."""
    from benchmarks.bench_quant_time import recipes as bench_recipes
    from dllmq.lab.n10_reproduce_findings import PAPER_SETTING, recipe_string
    from dllmq.sweeps.demo import demo_recipes

    demo = set(demo_recipes("tiny"))
    for setting in ("w8a8", "w4a4"):
        bench = {str(r) for r in bench_recipes("tiny", setting)}
        assert bench <= demo, bench - demo
        label = {v: k for k, v in PAPER_SETTING.items()}[setting]
        helper = {recipe_string("tiny", m, label) for m in ("rtn", "smoothquant", "quarot", "duquant")}
        assert helper == bench
    assert "rtn:w4a4:calib=tiny,n=16,len=128" in demo  # the README's RTN W4A4 baseline
