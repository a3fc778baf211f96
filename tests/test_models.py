"""Native LLaDA/Dream classes: official checkpoints load without remote code; Layout; padding; dtypes."""
import json

import pytest
import torch
from safetensors.torch import save_file
from transformers import AutoModel

from dllmq.models import DreamModel, LLaDAModelLM, ROLES, build_random_model, get_layout, load_model, tiny_config

LLADA_BLOCK_KEYS = ["q_proj", "k_proj", "v_proj", "attn_out", "ff_proj", "up_proj", "ff_out", "attn_norm", "ff_norm"]
DREAM_LAYER_KEYS = ["self_attn.q_proj.weight", "self_attn.q_proj.bias", "self_attn.k_proj.weight", "self_attn.k_proj.bias",
                    "self_attn.v_proj.weight", "self_attn.v_proj.bias", "self_attn.o_proj.weight",
                    "mlp.gate_proj.weight", "mlp.up_proj.weight", "mlp.down_proj.weight",
                    "input_layernorm.weight", "post_attention_layernorm.weight"]


def official_llada_checkpoint(path, d=32, layers=2, vocab=64, mlp=48):
    """Write a checkpoint the way GSAI-ML publishes LLaDA: official config fields + auto_map + key names."""
    config = {
        "architectures": ["LLaDAModelLM"], "model_type": "llada",
        "auto_map": {"AutoConfig": "configuration_llada.LLaDAConfig",
                     "AutoModel": "modeling_llada.LLaDAModelLM",
                     "AutoModelForCausalLM": "modeling_llada.LLaDAModelLM"},
        "d_model": d, "n_heads": 4, "n_kv_heads": 4, "n_layers": layers, "mlp_ratio": 4, "mlp_hidden_size": mlp,
        "activation_type": "silu", "block_type": "llama", "block_group_size": 1, "alibi": False, "alibi_bias_max": 8.0,
        "rope": True, "rope_full_precision": True, "rope_theta": 500000.0, "flash_attention": False,
        "attention_dropout": 0.0, "attention_layer_norm": False, "attention_layer_norm_with_affine": True,
        "residual_dropout": 0.0, "embedding_dropout": 0.0, "input_emb_norm": False, "layer_norm_type": "rms",
        "layer_norm_with_affine": True, "rms_norm_eps": 1e-5, "bias_for_layer_norm": False, "include_bias": False,
        "include_qkv_bias": False, "scale_logits": False, "max_sequence_length": 128, "vocab_size": vocab,
        "embedding_size": vocab, "weight_tying": False, "eos_token_id": 2, "pad_token_id": 2,
        "mask_token_id": 3, "init_device": "meta", "init_fn": "mitchell", "init_std": 0.02,
        "precision": "amp_bf16", "use_cache": False, "multi_query_attention": None,
    }
    g = torch.Generator().manual_seed(0)
    tensors = {"model.transformer.wte.weight": torch.randn(vocab, d, generator=g),
               "model.transformer.ln_f.weight": torch.rand(d, generator=g) + 0.5,
               "model.transformer.ff_out.weight": torch.randn(vocab, d, generator=g) * 0.05}
    shapes = {"q_proj": (d, d), "k_proj": (d, d), "v_proj": (d, d), "attn_out": (d, d), "ff_proj": (mlp, d),
              "up_proj": (mlp, d), "ff_out": (d, mlp), "attn_norm": (d,), "ff_norm": (d,)}
    for i in range(layers):
        for name in LLADA_BLOCK_KEYS:
            shape = shapes[name]
            t = torch.rand(shape, generator=g) + 0.5 if len(shape) == 1 else torch.randn(shape, generator=g) * 0.05
            tensors[f"model.transformer.blocks.{i}.{name}.weight"] = t
    (path / "config.json").write_text(json.dumps(config))
    save_file(tensors, str(path / "model.safetensors"), metadata={"format": "pt"})
    return tensors


def official_dream_checkpoint(path, d=32, layers=2, vocab=64, inter=48):
    config = {"architectures": ["DreamModel"], "model_type": "Dream",
              "auto_map": {"AutoConfig": "configuration_dream.DreamConfig", "AutoModel": "modeling_dream.DreamModel"},
              "hidden_size": d, "intermediate_size": inter, "num_hidden_layers": layers, "num_attention_heads": 4,
              "num_key_value_heads": 2, "vocab_size": vocab, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0,
              "rope_scaling": None, "tie_word_embeddings": False, "hidden_act": "silu", "mask_token_id": 3,
              "pad_token_id": 2, "bos_token_id": 1, "eos_token_id": 2, "max_position_embeddings": 128,
              "use_sliding_window": False, "sliding_window": None, "max_window_layers": 28, "attention_dropout": 0.0,
              "torch_dtype": "bfloat16"}
    g = torch.Generator().manual_seed(1)
    kv = d // 4 * 2
    shapes = {"self_attn.q_proj.weight": (d, d), "self_attn.q_proj.bias": (d,), "self_attn.k_proj.weight": (kv, d),
              "self_attn.k_proj.bias": (kv,), "self_attn.v_proj.weight": (kv, d), "self_attn.v_proj.bias": (kv,),
              "self_attn.o_proj.weight": (d, d), "mlp.gate_proj.weight": (inter, d), "mlp.up_proj.weight": (inter, d),
              "mlp.down_proj.weight": (d, inter), "input_layernorm.weight": (d,), "post_attention_layernorm.weight": (d,)}
    tensors = {"model.embed_tokens.weight": torch.randn(vocab, d, generator=g), "model.norm.weight": torch.ones(d),
               "lm_head.weight": torch.randn(vocab, d, generator=g) * 0.05}
    for i in range(layers):
        for name in DREAM_LAYER_KEYS:
            tensors[f"model.layers.{i}.{name}"] = torch.randn(shapes[name], generator=g) * 0.05
    (path / "config.json").write_text(json.dumps(config))
    save_file(tensors, str(path / "model.safetensors"), metadata={"format": "pt"})
    return tensors


@pytest.mark.parametrize("writer,cls", [(official_llada_checkpoint, LLaDAModelLM), (official_dream_checkpoint, DreamModel)])
def test_official_checkpoint_loads_natively_with_all_keys(tmp_path, writer, cls):
    tensors = writer(tmp_path)
    model, info = AutoModel.from_pretrained(str(tmp_path), output_loading_info=True, dtype=torch.float32)
    assert type(model) is cls
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    state = model.state_dict()
    assert set(state) == set(tensors)
    for key, value in tensors.items():
        torch.testing.assert_close(state[key], value)


def test_load_model_reads_local_official_dir(tmp_path):
    official_llada_checkpoint(tmp_path)
    from dllmq.models.tokenizers import build_char_tokenizer
    build_char_tokenizer().save_pretrained(str(tmp_path))
    model, tok = load_model(str(tmp_path), device="cpu")
    assert isinstance(model, LLaDAModelLM) and model.dtype == torch.float32
    assert model(torch.tensor([[5, 6, 7]])).logits.shape == (1, 3, 64)


def test_unknown_name_lists_known_models():
    with pytest.raises(ValueError, match="known: .*tiny.*GSAI-ML/LLaDA-8B-Instruct"):
        load_model("llada-9000")


@pytest.mark.parametrize("family", ["llada", "dream", "llama"])
def test_layout_gives_every_block_linear_exactly_one_role(family):
    model, _ = build_random_model(family)
    layout = get_layout(model)
    assert len(layout.blocks) == 2
    for b in layout.blocks:
        linears = {id(m) for m in b.module.modules() if isinstance(m, torch.nn.Linear)}
        roles = [id(m) for m in b.linears.values()]
        assert len(roles) == len(set(roles)) == len(linears) == len(ROLES)
        assert set(roles) == linears
        assert b.attn_norm is not b.mlp_norm
    assert isinstance(layout.embed, torch.nn.Embedding)
    assert layout.head.weight.shape[0] == model.config.vocab_size
    assert layout.head is not layout.embed
    names = layout.linear_names()
    assert len(names) == 2 * len(ROLES)
    if family == "llada":  # the name trap: block ff_out is "down", transformer.ff_out is the head
        assert names["model.transformer.blocks.0.ff_out"] == (0, "down")
        assert layout.head is model.model.transformer.ff_out


def test_layout_set_swaps_a_role():
    model, _ = build_random_model("llada")
    layout = get_layout(model)
    new = torch.nn.Linear(128, 64, bias=False)
    layout.blocks[1].set("down", new)
    assert model.model.transformer.blocks[1].ff_out is new
    with pytest.raises(KeyError, match="allowed"):
        layout.blocks[0].set("ffn", new)


@pytest.mark.parametrize("family", ["llada", "dream"])
def test_left_padding_with_attention_mask_matches_unpadded(family):
    model, _ = build_random_model(family)
    ids = torch.randint(4, 100, (1, 7))
    ref = model(ids).logits
    padded = torch.cat([torch.zeros(1, 3, dtype=torch.long), ids], 1)
    am = torch.cat([torch.zeros(1, 3, dtype=torch.long), torch.ones(1, 7, dtype=torch.long)], 1)
    out = model(padded, attention_mask=am).logits[:, 3:]
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("family", ["llada", "dream"])
def test_bf16_close_to_fp32(family):
    model, _ = build_random_model(family)
    ids = torch.randint(4, 100, (2, 9))
    ref = model(ids).logits
    out = model.to(torch.bfloat16)(ids).logits
    assert out.dtype == torch.bfloat16
    assert (out.float() - ref).abs().max() < 0.1 * ref.abs().max() + 0.05


def test_attention_is_bidirectional():
    model, _ = build_random_model("llada")
    ids = torch.randint(4, 100, (1, 6))
    changed = ids.clone()
    changed[0, -1] = (ids[0, -1] + 1) % 100
    # changing the LAST token changes the logits of the FIRST position (no causal mask)
    assert not torch.allclose(model(ids).logits[0, 0], model(changed).logits[0, 0])


def test_tiny_config_rejects_unknown_family():
    with pytest.raises(ValueError, match="family"):
        tiny_config("gpt2")


def test_dream_style_tokenizer_loads_without_remote_code(tmp_path):
    """Dream's tokenizer_config.json names a remote-code class; we load its BPE files with Qwen2's tokenizer."""
    vocab = {c: i for i, c in enumerate("abcdefghijklmnopqrstuvwxyzĠ")}
    vocab["ab"] = 27
    (tmp_path / "vocab.json").write_text(json.dumps(vocab))
    (tmp_path / "merges.txt").write_text("#version: 0.2\na b\n")
    special = {"special": True, "lstrip": False, "rstrip": False, "normalized": False, "single_word": False}
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "DreamTokenizer",
        "auto_map": {"AutoTokenizer": ["tokenization_dream.DreamTokenizer", None]},
        "added_tokens_decoder": {"28": {"content": "<|endoftext|>", **special}, "29": {"content": "<|mask|>", **special}},
        "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>", "mask_token": "<|mask|>"}))
    from dllmq.models import load_tokenizer
    tok = load_tokenizer(tmp_path)
    assert tok("abc").input_ids == [27, 2]
    assert tok.mask_token_id == 29 and tok.eos_token_id == 28


def test_smollm2_converted_copy_equals_the_gguf_load(tmp_path, monkeypatch):
    """The first load keeps a converted copy in DLLMQ_CACHE; a later load reads it: same weights, logits and
    tokenizer as the GGUF conversion. An unwritable cache warns and still returns the model."""
    import warnings

    from dllmq.models.loading import cache_dir

    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    monkeypatch.setenv("DLLMQ_CACHE", str(blocked))
    with pytest.warns(UserWarning, match="DLLMQ_CACHE"):
        reference, ref_tok = load_model("smollm2-135m", device="cpu")  # straight from the GGUF file
    monkeypatch.setenv("DLLMQ_CACHE", str(tmp_path / "cache"))
    assert cache_dir() == tmp_path / "cache"
    load_model("smollm2-135m", device="cpu")  # converts and keeps the copy
    (copy,) = (tmp_path / "cache").iterdir()
    assert (copy / "model.safetensors").exists() and not list((tmp_path / "cache").glob("*.partial-*"))
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        model, tok = load_model("smollm2-135m", device="cpu")  # from the copy
    ref_state, state = reference.state_dict(), model.state_dict()
    assert ref_state.keys() == state.keys() and all(torch.equal(ref_state[k], state[k]) for k in ref_state)
    text = "The capital of France is Paris. 12 + 30 = 42 <|im_start|>user"
    assert tok(text).input_ids == ref_tok(text).input_ids
    assert (tok.eos_token, tok.pad_token, tok.bos_token) == (ref_tok.eos_token, ref_tok.pad_token, ref_tok.bos_token)
    ids = ref_tok(text, return_tensors="pt").input_ids
    with torch.no_grad():
        assert torch.equal(model(ids).logits, reference(ids).logits)
