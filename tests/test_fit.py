"""fit_recipe: the paper presets adapted, explicitly, to a model whose sizes they do not divide."""
import pytest

from dllmq.quant import Recipe
from dllmq.quant.fit import fit_recipe


def test_smollm2_sizes_get_explicit_fits(smollm2):
    model, _ = smollm2  # hidden 576 = 9 x 64, MLP 1536, 9 heads
    assert str(fit_recipe("rtn", "w4a16g128", model)) == "rtn:w4a16g64"
    assert fit_recipe("gptq", "w3a16g128", model).group_size == 64
    duquant = fit_recipe("duquant", "w4a4", model, rotation_steps=16)
    assert duquant.knob("block_size") == 64 and duquant.knob("rotation_steps") == 16
    assert fit_recipe("quarot", "w4a4", model).knob("hadamard_fallback") == "orthogonal"


def test_sizes_that_fit_keep_the_paper_preset(tiny_trained):
    model, _ = tiny_trained  # hidden 128, MLP 384
    assert fit_recipe("gptq", "w4a16g128", model) == Recipe.paper("gptq", "w4a16g128")
    assert fit_recipe("duquant", "w4a4", model) == Recipe.paper("duquant", "w4a4")
    assert fit_recipe("rtn", "w8a8", model) == Recipe.parse("rtn:w8a8")


def test_unknown_setting_is_an_error(tiny_trained):
    with pytest.raises(ValueError):
        fit_recipe("gptq", "w5a7", tiny_trained[0])
