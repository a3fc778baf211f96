"""QuaRot: the rotated full-precision model is the same function; outliers spread; sizes and errors."""
import copy

import pytest
import torch

from dllmq.models import build_random_model, get_layout
from dllmq.quant import Recipe, quantize
from dllmq.quant.report import relative_l2_error
from dllmq.quant.hadamard import HadamardRotation, UnsupportedHadamardSize
from dllmq.quant.qlinear import QuantLinear, build_module, module_spec
from dllmq.quant.quarot import install_online_transforms, residual_rotation, rotate_model
from dllmq.quant.wa import AttentionInputQuantizer


def _ids(B=4, T=16, seed=0):
    return torch.randint(4, 101, (B, T), generator=torch.Generator().manual_seed(seed))


def _logits(model, ids):
    with torch.no_grad():
        return model(ids).logits


def _random_norms(layout):
    with torch.no_grad():
        for b in layout.blocks:
            b.attn_norm.weight.uniform_(0.5, 2.0)
            b.mlp_norm.weight.uniform_(0.5, 2.0)
        layout.final_norm.weight.uniform_(0.5, 2.0)


@pytest.mark.parametrize("rotation", ["hadamard", "random"])
def test_rotation_is_exact_on_every_family(tiny_llada, tiny_dream, tiny_llama, rotation):
    for model, _ in (tiny_llada, tiny_dream, tiny_llama):
        layout = get_layout(model)
        _random_norms(layout)
        ids = _ids()
        ref = _logits(model, ids)
        online = rotate_model(layout, rotation=rotation, seed=1)
        install_online_transforms(layout, online)
        if layout.blocks[0].attention is not None:  # + the online head-dim Hadamard on Q and K (16-bit)
            for b in layout.blocks:
                layout.set_attention_input_quantizer(b.index, AttentionInputQuantizer(head_dim=layout.head_dim,
                                                                                      rotate_qk=True))
        assert relative_l2_error(ref, _logits(model, ids)) < 1e-4
        assert isinstance(layout.blocks[0].get("down").input_transform, HadamardRotation)


def test_residual_rotation_is_orthogonal_and_flat():
    Q = residual_rotation(64, "hadamard", seed=3)
    assert torch.allclose(Q @ Q.T, torch.eye(64, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(Q.abs(), torch.full_like(Q, 1 / 8))
    with pytest.raises(ValueError, match="rotation"):
        residual_rotation(64, "givens")


def test_rotation_spreads_a_massive_channel(tiny_llada):
    """A massive residual channel (as in real LLMs) stops dominating the q input after rotation."""
    model, _ = tiny_llada
    layout = get_layout(model)
    with torch.no_grad():
        layout.embed.weight[:, 5] = 40.0  # one channel carries a huge constant, like a massive activation
    ids = _ids()
    seen = []
    hook = layout.blocks[0].get("q").register_forward_pre_hook(lambda m, a: seen.append(a[0].detach()))
    _logits(model, ids)
    hook.remove()
    before = seen[0].abs().amax(-1) / seen[0].pow(2).mean(-1).sqrt()  # per-token max / rms
    install_online_transforms(layout, rotate_model(layout))
    seen.clear()
    hook = layout.blocks[0].get("q").register_forward_pre_hook(lambda m, a: seen.append(a[0].detach()))
    _logits(model, ids)
    hook.remove()
    after = seen[0].abs().amax(-1) / seen[0].pow(2).mean(-1).sqrt()
    assert before.mean() > 4 * after.mean()


def test_unsupported_sizes_need_an_explicit_alternative():
    model, _ = build_random_model("llama", intermediate_size=184)  # 184 = 8·23: no Hadamard matrix here
    with pytest.raises(UnsupportedHadamardSize, match="hadamard_fallback"):
        quantize(model, Recipe.parse("quarot:w8a8:weights=rtn"), _ids())
    ids = _ids()
    ref = _logits(model, ids)
    for fallback in ("block", "orthogonal"):
        m = copy.deepcopy(model)
        layout = get_layout(m)
        install_online_transforms(layout, rotate_model(layout, fallback=fallback))
        assert layout.blocks[0].get("down").input_transform.kind == fallback
        assert relative_l2_error(ref, _logits(m, ids)) < 1e-4
    with pytest.raises(ValueError, match="hadamard_fallback"):
        quantize(model, Recipe.parse("quarot:w8a8:weights=rtn,hadamard_fallback=nearest"), _ids())


def test_head_count_without_hadamard_uses_the_fallback():
    model, _ = build_random_model("llada", d_model=48, n_heads=3, n_kv_heads=3)  # 3 heads of 16
    ids = _ids()
    ref = _logits(model, ids)
    layout = get_layout(model)
    with pytest.raises(UnsupportedHadamardSize):
        rotate_model(get_layout(copy.deepcopy(model)))
    install_online_transforms(layout, rotate_model(layout, fallback="orthogonal"))
    assert relative_l2_error(ref, _logits(model, ids)) < 1e-4


@pytest.mark.parametrize("weights", ["gptq", "rtn"])
def test_apply_w8a8_close_and_quantizers_in_place(tiny_dream, weights):
    model, _ = tiny_dream
    ids = _ids(seed=1)
    ref = _logits(model, ids)
    recipe = Recipe.paper("quarot", "w8a8").with_(knobs={"weights": weights})
    qmodel, report = quantize(model, recipe, _ids())
    layout = get_layout(qmodel)
    lin = layout.blocks[1].linears
    assert all(isinstance(m, QuantLinear) for m in lin.values())
    assert lin["q"].w_spec.sym and lin["q"].act_quantizer.spec.sym and lin["q"].w_bits == 8
    assert isinstance(lin["o"].input_transform, HadamardRotation) and lin["o"].input_transform.inner == 16
    attn = layout.blocks[1].attention.attn_input_quantizer
    assert attn.q_quant.bits == 16 and attn.k_quant.bits == 8 and attn.qk_rotation is not None
    assert len(report.layers) == 14
    assert relative_l2_error(ref, _logits(qmodel, ids)) < 0.05


def test_online_transform_serializes():
    t = HadamardRotation(9, inner=4, fallback="orthogonal", seed=5)
    t2 = build_module(module_spec(t))
    t2.load_state_dict(t.state_dict())
    x = torch.randn(2, 36)
    assert torch.allclose(t(x), t2(x))


def test_save_and_load_round_trip_with_a_tied_head(tmp_path):
    from dllmq.quant import load_quantized, save_quantized
    model, tok = build_random_model("llama", tie_word_embeddings=True)
    qmodel, _ = quantize(model, Recipe.parse("quarot:w4a4:weights=rtn"), _ids())
    layout = get_layout(qmodel)
    assert layout.head.weight is not layout.embed.weight  # untied by the rotation
    save_quantized(qmodel, tmp_path, tok)
    loaded, _, _ = load_quantized(tmp_path)
    assert torch.equal(_logits(qmodel, _ids(seed=3)), _logits(loaded, _ids(seed=3)))
