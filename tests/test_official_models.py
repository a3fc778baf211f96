"""The native classes against the official modeling code: Auto-class loading on `import dllmq`, and bf16
logits computed the way each official implementation computes them (RoPE precision in particular).

The reference forwards below restate the official `modeling_llada.py` (GSAI-ML/LLaDA-8B-*) and
`modeling_dream.py` (Dream-org/Dream-v0-*-7B) step by step, with the model's own weights.
"""
import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn.functional as F

from dllmq.models import build_random_model

OFFICIAL_AUTO_MAP = {
    "llada": ("llada", ["LLaDAModelLM"], {"AutoConfig": "configuration_llada.LLaDAConfig",
                                          "AutoModel": "modeling_llada.LLaDAModelLM",
                                          "AutoModelForCausalLM": "modeling_llada.LLaDAModelLM"}),
    "dream": ("Dream", ["DreamModel"], {"AutoConfig": "configuration_dream.DreamConfig",
                                        "AutoModel": "modeling_dream.DreamModel"}),
}


def save_official_format(family: str, path) -> torch.nn.Module:
    """A tiny random native model saved like the hub repos: official model_type, architectures and an
    auto_map naming remote-code files (which do not exist: remote code must never be needed)."""
    model, _ = build_random_model(family, seed=3)
    model.save_pretrained(str(path))
    config = json.loads((path / "config.json").read_text())
    model_type, architectures, auto_map = OFFICIAL_AUTO_MAP[family]
    config.update(model_type=model_type, architectures=architectures, auto_map=auto_map)
    (path / "config.json").write_text(json.dumps(config))
    return model


def _fresh_python(code: str) -> str:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=300,
                         env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def test_import_dllmq_alone_makes_official_checkpoints_load_with_the_auto_classes(tmp_path):
    models = {f: save_official_format(f, tmp_path / f) for f in ("llada", "dream")}
    ids = torch.tensor([[5, 9, 3, 40, 41]])
    for family, model in models.items():
        torch.save(model(ids).logits, tmp_path / f"{family}.ref")  # plain tensor, read back with weights_only
    out = _fresh_python(f"""
        import sys
        import dllmq
        # registration is armed but cheap: importing dllmq loaded neither torch nor transformers
        print("heavy", "torch" in sys.modules, "transformers" in sys.modules)
        import torch
        from transformers import AutoModel, AutoModelForCausalLM, AutoModelForMaskedLM
        for family in ("llada", "dream"):
            path = "{tmp_path}/" + family
            ref = torch.load(path + ".ref", weights_only=True)
            for auto in (AutoModel, AutoModelForCausalLM, AutoModelForMaskedLM):
                model = auto.from_pretrained(path)
                # the same weights and class: equal up to float reductions, which may split differently
                # in another process (thread count) on some CPUs
                same = torch.allclose(model(torch.tensor([[5, 9, 3, 40, 41]])).logits, ref, rtol=1e-5, atol=1e-6)
                print(family, auto.__name__, type(model).__module__ + "." + type(model).__name__, same)
        print("native modeling imported", "dllmq.models.llada" in sys.modules)
    """)
    lines = out.split("\n")
    assert "heavy False False" in lines
    for auto in ("AutoModel", "AutoModelForCausalLM", "AutoModelForMaskedLM"):
        assert f"llada {auto} dllmq.models.llada.LLaDAModelLM True" in lines
        assert f"dream {auto} dllmq.models.dream.DreamModel True" in lines


def test_registration_also_works_when_transformers_was_imported_first(tmp_path):
    save_official_format("dream", tmp_path / "dream")
    out = _fresh_python(f"""
        from transformers import AutoConfig, AutoModelForMaskedLM
        import dllmq
        print(type(AutoConfig.from_pretrained("{tmp_path}/dream")).__name__)
        print(type(AutoModelForMaskedLM.from_pretrained("{tmp_path}/dream")).__name__)
    """)
    assert out.split("\n")[:2] == ["DreamConfig", "DreamModel"]


def test_deferred_stand_in_replaces_itself_with_the_real_class():
    from transformers import AutoModel, AutoModelForMaskedLM

    from dllmq.models import DreamConfig, DreamModel
    from dllmq.models.registration import DeferredModelClass

    stand_in = DeferredModelClass(DreamConfig, "dllmq.models.dream", "DreamModel")
    for auto in (AutoModel, AutoModelForMaskedLM):
        auto.register(DreamConfig, stand_in, exist_ok=True)
    assert AutoModel._model_mapping[DreamConfig] is stand_in and stand_in.config_class is DreamConfig
    model = AutoModel.from_config(build_random_model("dream")[0].config)
    assert type(model) is DreamModel
    # the first use put the real class into every Auto mapping
    assert AutoModel._model_mapping[DreamConfig] is AutoModelForMaskedLM._model_mapping[DreamConfig] is DreamModel


# ------------------------------------------------------------------------------------------------------
# official-style forwards (our restatement of the two modeling files)


def _rms(x, weight, eps):
    dtype = x.dtype
    x32 = x.to(torch.float32)
    x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps)
    return weight * x32.to(dtype)


def _half_turn(x):
    first, second = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2:]
    return torch.cat((-second, first), dim=-1)


def official_dream_logits(model, ids):
    """Dream's code: Qwen2 rotary (fp32 tables cast to the activation dtype, rotation in that dtype)."""
    c, w = model.config, dict(model.named_parameters())
    B, T = ids.shape
    nh, nkv = c.num_attention_heads, c.num_key_value_heads
    hd = c.hidden_size // nh
    x = F.embedding(ids, w["model.embed_tokens.weight"])
    dtype = x.dtype
    inv_freq = 1.0 / (c.rope_theta ** (torch.arange(0, hd, 2, dtype=torch.int64).float() / hd))
    positions = torch.arange(T)[None, :].expand(B, T)
    freqs = (inv_freq[None, :, None].float().expand(B, -1, 1) @ positions[:, None, :].float()).transpose(1, 2)
    angles = torch.cat((freqs, freqs), dim=-1)
    cos, sin = angles.cos().to(dtype)[:, None], angles.sin().to(dtype)[:, None]
    for i in range(c.num_hidden_layers):
        p = f"model.layers.{i}."
        h = _rms(x, w[p + "input_layernorm.weight"], c.rms_norm_eps)
        q = F.linear(h, w[p + "self_attn.q_proj.weight"], w[p + "self_attn.q_proj.bias"]).view(B, T, nh, hd).transpose(1, 2)
        k = F.linear(h, w[p + "self_attn.k_proj.weight"], w[p + "self_attn.k_proj.bias"]).view(B, T, nkv, hd).transpose(1, 2)
        v = F.linear(h, w[p + "self_attn.v_proj.weight"], w[p + "self_attn.v_proj.bias"]).view(B, T, nkv, hd).transpose(1, 2)
        q = (q * cos) + (_half_turn(q) * sin)
        k = (k * cos) + (_half_turn(k) * sin)
        k = k[:, :, None].expand(B, nkv, nh // nkv, T, hd).reshape(B, nh, T, hd)
        v = v[:, :, None].expand(B, nkv, nh // nkv, T, hd).reshape(B, nh, T, hd)
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=None, is_causal=False)
        x = x + F.linear(a.transpose(1, 2).reshape(B, T, -1), w[p + "self_attn.o_proj.weight"])
        h = _rms(x, w[p + "post_attention_layernorm.weight"], c.rms_norm_eps)
        gate = F.silu(F.linear(h, w[p + "mlp.gate_proj.weight"]))
        x = x + F.linear(gate * F.linear(h, w[p + "mlp.up_proj.weight"]), w[p + "mlp.down_proj.weight"])
    return F.linear(_rms(x, w["model.norm.weight"], c.rms_norm_eps), w["lm_head.weight"])


def official_llada_logits(model, ids):
    """LLaDA's code (OLMo lineage): rotary with rope_full_precision -> q, k rotated in fp32, cast back."""
    c, w = model.config, dict(model.named_parameters())
    B, T = ids.shape
    nh, nkv, hd = c.n_heads, c.n_kv_heads, c.d_model // c.n_heads
    x = F.embedding(ids, w["model.transformer.wte.weight"])
    inv_freq = 1.0 / (c.rope_theta ** (torch.arange(0, hd, 2, dtype=torch.float) / hd))
    angles = torch.einsum("i , j -> i j", torch.arange(T, dtype=torch.float), inv_freq)
    angles = torch.cat((angles, angles), dim=-1)
    sin, cos = angles.sin()[None, None], angles.cos()[None, None]
    for i in range(c.n_layers):
        p = f"model.transformer.blocks.{i}."
        h = _rms(x, w[p + "attn_norm.weight"], c.rms_norm_eps)
        q = F.linear(h, w[p + "q_proj.weight"]).view(B, T, nh, hd).transpose(1, 2)
        k = F.linear(h, w[p + "k_proj.weight"]).view(B, T, nkv, hd).transpose(1, 2)
        v = F.linear(h, w[p + "v_proj.weight"]).view(B, T, nkv, hd).transpose(1, 2)
        q32, k32 = q.float(), k.float()
        q = ((q32 * cos) + (_half_turn(q32) * sin)).type_as(q)
        k = ((k32 * cos) + (_half_turn(k32) * sin)).type_as(k)
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=None, is_causal=False)
        x = x + F.linear(a.transpose(1, 2).reshape(B, T, -1), w[p + "attn_out.weight"])
        h = _rms(x, w[p + "ff_norm.weight"], c.rms_norm_eps)
        up = F.silu(F.linear(h, w[p + "ff_proj.weight"])) * F.linear(h, w[p + "up_proj.weight"])
        x = x + F.linear(up, w[p + "ff_out.weight"])
    return F.linear(_rms(x, w["model.transformer.ln_f.weight"], c.rms_norm_eps), w["model.transformer.ff_out.weight"])


REFERENCE = {"llada": official_llada_logits, "dream": official_dream_logits}
WIDE_INIT = {"llada": {"init_std": 0.3}, "dream": {"initializer_range": 0.3}}


@pytest.mark.parametrize("family", ["llada", "dream"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_logits_equal_the_official_computation(family, dtype):
    model, _ = build_random_model(family, seed=4, **WIDE_INIT[family])
    model = model.to(dtype)
    ids = torch.randint(4, 100, (2, 24), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours, ref = model(ids).logits, REFERENCE[family](model, ids)
    assert ours.dtype == ref.dtype == dtype
    assert torch.equal(ours, ref), (ours.float() - ref.float()).abs().max()


def test_dream_bf16_rotation_follows_dream_and_the_fp32_option_differs():
    """Rotating Dream's q/k in fp32 (the kit's option) is a real difference in bf16, not a no-op."""
    model, _ = build_random_model("dream", seed=4, initializer_range=0.3)
    model = model.to(torch.bfloat16)
    ids = torch.randint(4, 100, (2, 24), generator=torch.Generator().manual_seed(0))
    assert model.config.rope_full_precision is False
    with torch.no_grad():
        ref = official_dream_logits(model, ids)
        model.config.rope_full_precision = True
        fp32_rotation = model(ids).logits
    assert not torch.equal(fp32_rotation, ref)
    model.config.rope_full_precision = False
    with torch.no_grad():
        assert torch.equal(model(ids).logits, ref)
