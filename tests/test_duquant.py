"""DuQuant: the rotation and permutation steps, exactness of the transformed model, knobs and errors."""
import math

import pytest
import torch

from dllmq.models import get_layout
from dllmq.quant import Recipe, quantize
from dllmq.quant.duquant import (DuQuantTransform, calibrate_transform, flat_rotation, greedy_rotation, swap_to,
                                 transform_model, zigzag_permutation)
from dllmq.quant.report import relative_l2_error
from dllmq.quant.qlinear import QuantLinear, build_module, module_spec
from dllmq.quant.wa import AttentionInputQuantizer

FAST = "block_size=16,rotation_steps=16"


def _ids(B=4, T=16, seed=0):
    return torch.randint(4, 101, (B, T), generator=torch.Generator().manual_seed(seed))


def _logits(model, ids):
    with torch.no_grad():
        return model(ids).logits


def _eye(n):
    return torch.eye(n, dtype=torch.float64)


def test_flat_rotation_maps_the_chosen_channel_onto_the_flat_direction():
    g = torch.Generator().manual_seed(0)
    R = flat_rotation(16, g)
    assert torch.allclose(R @ R.T, _eye(16), atol=1e-12)
    assert torch.allclose(R[0], torch.full((16,), 1 / 4, dtype=torch.float64))
    Rj = swap_to(R, 9)
    assert torch.allclose(Rj @ Rj.T, _eye(16), atol=1e-12)
    e9 = torch.zeros(16, dtype=torch.float64)
    e9[9] = 8.0
    assert torch.allclose((e9 @ Rj).abs(), torch.full((16,), 2.0, dtype=torch.float64))  # 8 spread as 8/√16


@pytest.mark.parametrize("index", ["channel", "row"])
def test_greedy_rotation_lowers_the_peak(index):
    torch.manual_seed(0)
    x = torch.randn(32, 64)
    x[:, 3] *= 30  # an outlier channel in block 0
    R = greedy_rotation(x, 16, steps=32, index=index, seed=0)
    assert torch.allclose(R @ R.T, _eye(16), atol=1e-10)
    y = x.double().reshape(-1, 16) @ R
    assert (y.max() - y.min()) < 0.5 * (x.max() - x.min())


def test_greedy_rotation_never_worsens_the_peak():
    x = torch.randn(64, 32).double()  # no outlier: the best prefix may be empty (identity)
    R = greedy_rotation(x, 16, steps=8, seed=1)
    y = x.reshape(-1, 16) @ R
    assert (y.max() - y.min()) <= (x.max() - x.min()) + 1e-12
    with pytest.raises(ValueError, match="greedy_index"):
        greedy_rotation(x, 16, index="column")
    with pytest.raises(ValueError, match="block_size"):
        greedy_rotation(x, 12)


def test_zigzag_permutation_example():
    # channels 0..7 with decreasing max|x|, 2 blocks of 4: ranks go to blocks 0,1,1,0,0,1,1,0
    perm = zigzag_permutation(torch.tensor([8.0, 7, 6, 5, 4, 3, 2, 1]), block_size=4)
    assert perm.tolist() == [0, 3, 4, 7, 1, 2, 5, 6]


def test_zigzag_balances_blocks():
    torch.manual_seed(0)
    m = torch.rand(128) ** 4 * 100  # a few very large channels
    perm = zigzag_permutation(m, 16)
    assert sorted(perm.tolist()) == list(range(128))
    before = m.view(8, 16).amax(1)
    after = m[perm].view(8, 16).amax(1)
    assert after.max() / after.min() < before.max() / before.min()


def test_transform_is_orthogonal_and_serializes():
    torch.manual_seed(0)
    x = torch.randn(40, 64)
    x[:, 10] *= 20
    t = calibrate_transform(x, 16, steps=16)
    T = t.matrix()
    assert torch.allclose(T @ T.T, _eye(64), atol=1e-6)
    assert torch.allclose(t(x).double(), x.double() @ T, atol=1e-4)
    assert t(x).abs().max() < x.abs().max() / 3  # the outlier is spread
    t2 = build_module(module_spec(t))
    t2.load_state_dict(t.state_dict())
    assert torch.equal(t2(x), t(x))
    with pytest.raises(ValueError, match="permutation_times"):
        calibrate_transform(x, 16, permutation_times=2)


@pytest.mark.parametrize("family,calib_input", [("llada", "mean"), ("dream", "mean"), ("llama", "mean"),
                                                ("dream", "all")])
def test_transformed_model_is_exact_on_every_family(request, family, calib_input):
    model, _ = request.getfixturevalue(f"tiny_{family}")
    ids = _ids()
    ref = _logits(model, ids)
    layout = get_layout(model)
    recipe = Recipe.parse(f"duquant:w4a4:{FAST},calib_input={calib_input},greedy_index=row")
    transform_model(model, layout, recipe, _ids(seed=2), quantize=False)
    lin = layout.blocks[0].linears
    assert all(isinstance(lin[r].input_transform, DuQuantTransform) for r in lin)
    assert torch.equal(lin["k"].input_transform.R1, lin["q"].input_transform.R1)  # one transform per site
    assert relative_l2_error(ref, _logits(model, ids)) < 1e-4


def test_block_size_must_divide_and_is_capped(tiny_llada):
    model, _ = tiny_llada
    with pytest.raises(ValueError, match="block_size"):
        quantize(model, Recipe.parse("duquant:w8a8:block_size=24,rotation_steps=2"), _ids())
    _, report = quantize(model, Recipe.parse("duquant:w8a8:block_size=128,rotation_steps=2"), _ids())
    assert any("block_size=128 > 64" in e for e in report.events)  # hidden 64: one block, reported
    with pytest.raises(ValueError, match="calib_input"):
        quantize(model, Recipe.parse("duquant:w8a8:calib_input=median"), _ids())


def test_apply_installs_the_paper_configuration(tiny_dream):
    model, _ = tiny_dream
    ids = _ids(seed=1)
    ref = _logits(model, ids)
    recipe = Recipe.paper("duquant", "w8a8").with_(knobs={"block_size": 16, "rotation_steps": 16})
    assert (recipe.w_clip, recipe.a_clip, recipe.q_bits, recipe.kv_bits) == (0.8, 0.9, 8, 8)
    qmodel, report = quantize(model, recipe, _ids())
    layout = get_layout(qmodel)
    lin = layout.blocks[0].linears
    assert all(isinstance(m, QuantLinear) for m in lin.values())
    assert lin["up"].w_spec.clip_ratio == 0.8 and lin["up"].act_quantizer.spec.clip_ratio == 0.9
    attn = layout.blocks[0].attention.attn_input_quantizer
    assert isinstance(attn, AttentionInputQuantizer) and attn.qk_rotation is not None and attn.q_quant.bits == 8
    assert len(report.layers) == 14 and all(math.isfinite(r.error) for r in report.layers)
    # W8A8 with DuQuant's clip ratios (tuned for 4 bits) on a random model: close, not exact
    assert relative_l2_error(ref, _logits(qmodel, ids)) < 0.3


def test_save_and_load_round_trip(tiny_llada, tmp_path):
    from dllmq.quant import load_quantized, save_quantized
    model, tok = tiny_llada
    qmodel, _ = quantize(model, Recipe.parse(f"duquant:w4a4:{FAST}"), _ids())
    save_quantized(qmodel, tmp_path, tok)
    loaded, _, recipe = load_quantized(tmp_path)
    assert recipe.startswith("duquant:w4a4")
    assert torch.equal(_logits(qmodel, _ids(seed=3)), _logits(loaded, _ids(seed=3)))


@pytest.fixture(scope="module")
def smollm2_setup(smollm2):
    from dllmq.calibration import get_calibration, load_text

    model, tok = smollm2
    calib = get_calibration("text", tok, n_samples=4, seq_len=128, seed=0)
    ids = tok(load_text("test"), return_tensors="pt", add_special_tokens=False).input_ids[0][:256].view(2, 128)
    return model, calib, ids, _logits(model, ids).float()


def _smollm2_error(setup, method, setting, fields=None, **knobs):
    model, calib, ids, ref = setup
    recipe = Recipe.paper(method, setting, model=model, **knobs)
    qmodel, _ = quantize(model, recipe.with_(**(fields or {})), calib)
    return relative_l2_error(ref, _logits(qmodel, ids).float())


@pytest.mark.slow
def test_duquant_w8a8_vs_rtn_w8a8_on_smollm2(smollm2_setup):
    """DuQuant's transforms beat RTN at W8A8; the preset loses to RTN only through the clip ratios it shares with
    the reference scripts (weights 0.8, activations 0.9, tuned for 4 bits): RTN with the same clips loses too."""
    fast = dict(rotation_steps=16)
    rtn = _smollm2_error(smollm2_setup, "rtn", "w8a8")
    preset = _smollm2_error(smollm2_setup, "duquant", "w8a8", **fast)
    unclipped = _smollm2_error(smollm2_setup, "duquant", "w8a8", {"w_clip": 1.0, "a_clip": 1.0}, **fast)
    rtn_clipped = _smollm2_error(smollm2_setup, "rtn", "w8a8", {"w_clip": 0.8, "a_clip": 0.9, "q_bits": 8, "kv_bits": 8})
    print({"rtn": rtn, "duquant": preset, "duquant_unclipped": unclipped, "rtn_with_duquant_clips": rtn_clipped})
    assert unclipped < rtn
    assert preset > rtn and rtn_clipped > rtn
    assert preset < rtn_clipped
