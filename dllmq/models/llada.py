"""Native LLaDA (GSAI-ML/LLaDA-8B-*, LLaDA-1.5) as a transformers PreTrainedModel, no remote code.

Config fields, module tree and parameter names match the official checkpoint, so its safetensors load
with every key matched:

    model.transformer.wte                         Embedding(vocab, d_model)
    model.transformer.blocks.N.attn_norm/ff_norm  RMSNorm (fp32 inside)
    model.transformer.blocks.N.q_proj/k_proj/v_proj/attn_out
    model.transformer.blocks.N.ff_proj (gate, silu) / up_proj / ff_out (down projection)
    model.transformer.ln_f                        final RMSNorm
    model.transformer.ff_out                      LM head (untied)   <- name trap: not the block ff_out

Attention is bidirectional SDPA; RoPE is rotate-half, computed in fp32; positions are 0..T-1 as in the
official code (RoPE is relative, so left padding with masked keys does not change the result).
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from transformers import PretrainedConfig, PreTrainedModel
from transformers import initialization as hf_init
from transformers.modeling_outputs import CausalLMOutputWithPast

from .common import RMSNorm, apply_rope, bidirectional_attention, key_padding_mask, rope_cos_sin


class LLaDAConfig(PretrainedConfig):
    """Field names as in the official LLaDA config.json (OLMo lineage)."""

    model_type = "llada"
    attribute_map = {
        "hidden_size": "d_model",
        "num_attention_heads": "n_heads",
        "num_key_value_heads": "n_kv_heads",
        "num_hidden_layers": "n_layers",
        "intermediate_size": "mlp_hidden_size",
        "max_position_embeddings": "max_sequence_length",
    }

    def __init__(
        self,
        d_model: int = 4096,
        n_heads: int = 32,
        n_kv_heads: Optional[int] = None,
        n_layers: int = 32,
        mlp_ratio: int = 4,
        mlp_hidden_size: Optional[int] = 12288,
        activation_type: str = "silu",
        block_type: str = "llama",
        block_group_size: int = 1,
        rope: bool = True,
        rope_full_precision: bool = True,
        rope_theta: float = 500000.0,
        alibi: bool = False,
        flash_attention: bool = False,
        attention_layer_norm: bool = False,
        layer_norm_type: str = "rms",
        layer_norm_with_affine: bool = True,
        rms_norm_eps: float = 1e-5,
        include_bias: bool = False,
        include_qkv_bias: bool = False,
        bias_for_layer_norm: bool = False,
        scale_logits: bool = False,
        input_emb_norm: bool = False,
        max_sequence_length: int = 4096,
        vocab_size: int = 126464,
        embedding_size: Optional[int] = 126464,
        weight_tying: bool = False,
        mask_token_id: int = 126336,
        eos_token_id: int = 126081,
        pad_token_id: int = 126081,
        init_std: float = 0.02,
        use_cache: bool = False,
        **kwargs,
    ):
        self.d_model = d_model
        self.n_heads = n_heads
        self.n_kv_heads = n_kv_heads if n_kv_heads is not None else n_heads
        self.n_layers = n_layers
        self.mlp_ratio = mlp_ratio
        self.mlp_hidden_size = mlp_hidden_size
        self.activation_type = activation_type
        self.block_type = block_type
        self.block_group_size = block_group_size
        self.rope = rope
        self.rope_full_precision = rope_full_precision
        self.rope_theta = rope_theta
        self.alibi = alibi
        self.flash_attention = flash_attention
        self.attention_layer_norm = attention_layer_norm
        self.layer_norm_type = layer_norm_type
        self.layer_norm_with_affine = layer_norm_with_affine
        self.rms_norm_eps = rms_norm_eps
        self.include_bias = include_bias
        self.include_qkv_bias = include_qkv_bias
        self.bias_for_layer_norm = bias_for_layer_norm
        self.scale_logits = scale_logits
        self.input_emb_norm = input_emb_norm
        self.max_sequence_length = max_sequence_length
        self.vocab_size = vocab_size
        self.embedding_size = embedding_size
        self.weight_tying = weight_tying
        self.mask_token_id = mask_token_id
        self.init_std = init_std
        self.use_cache = use_cache
        kwargs.setdefault("tie_word_embeddings", weight_tying)
        super().__init__(eos_token_id=eos_token_id, pad_token_id=pad_token_id, **kwargs)

    @property
    def mlp_width(self) -> int:
        return self.mlp_hidden_size or self.mlp_ratio * self.d_model

    @property
    def padded_vocab(self) -> int:
        return self.embedding_size or self.vocab_size


class LLaDALlamaBlock(nn.Module):
    """One pre-norm transformer block: x + attn_out(attn(attn_norm x)); x + ff_out(silu(ff_proj n) * up_proj n)."""

    def __init__(self, config: LLaDAConfig):
        super().__init__()
        d, nh, nkv = config.d_model, config.n_heads, config.n_kv_heads
        self.n_heads, self.n_kv_heads, self.head_dim = nh, nkv, d // nh
        self.rope_theta = config.rope_theta
        qkv_bias = config.include_bias or config.include_qkv_bias
        bias = config.include_bias
        self.attn_norm = RMSNorm(d, config.rms_norm_eps)
        self.ff_norm = RMSNorm(d, config.rms_norm_eps)
        self.q_proj = nn.Linear(d, d, bias=qkv_bias)
        self.k_proj = nn.Linear(d, nkv * self.head_dim, bias=qkv_bias)
        self.v_proj = nn.Linear(d, nkv * self.head_dim, bias=qkv_bias)
        self.attn_out = nn.Linear(d, d, bias=bias)
        self.ff_proj = nn.Linear(d, config.mlp_width, bias=bias)
        self.up_proj = nn.Linear(d, config.mlp_width, bias=bias)
        self.ff_out = nn.Linear(config.mlp_width, d, bias=bias)
        self.attn_input_quantizer = None  # optional (q, k, v) -> (q, k, v); set by W-A methods

    def forward(self, x: torch.Tensor, attention_mask: Optional[torch.Tensor] = None,
                position_ids: Optional[torch.Tensor] = None) -> torch.Tensor:
        B, T, _ = x.shape
        if position_ids is None:
            position_ids = torch.arange(T, device=x.device).expand(B, T)
        h = self.attn_norm(x)
        q = self.q_proj(h).view(B, T, self.n_heads, self.head_dim).transpose(1, 2)  # (B, nh, T, hs)
        k = self.k_proj(h).view(B, T, self.n_kv_heads, self.head_dim).transpose(1, 2)  # (B, nkv, T, hs)
        v = self.v_proj(h).view(B, T, self.n_kv_heads, self.head_dim).transpose(1, 2)
        cos, sin = rope_cos_sin(position_ids, self.head_dim, self.rope_theta)
        q, k = apply_rope(q, k, cos, sin)
        att = bidirectional_attention(q, k, v, key_padding_mask(attention_mask), self.attn_input_quantizer)
        x = x + self.attn_out(att.transpose(1, 2).reshape(B, T, -1))
        h = self.ff_norm(x)
        return x + self.ff_out(F.silu(self.ff_proj(h)) * self.up_proj(h))


class LLaDAModel(nn.Module):
    """Holds `transformer` (a ModuleDict) so parameter names read `model.transformer.*`."""

    def __init__(self, config: LLaDAConfig):
        super().__init__()
        self.config = config
        modules = dict(
            wte=nn.Embedding(config.padded_vocab, config.d_model),
            blocks=nn.ModuleList(LLaDALlamaBlock(config) for _ in range(config.n_layers)),
            ln_f=RMSNorm(config.d_model, config.rms_norm_eps),
        )
        if not config.weight_tying:
            modules["ff_out"] = nn.Linear(config.d_model, config.padded_vocab, bias=config.include_bias)
        self.transformer = nn.ModuleDict(modules)

    def forward(self, input_ids, attention_mask=None, position_ids=None, inputs_embeds=None,
                output_hidden_states: bool = False, logits_slice: Optional[tuple] = None):
        x = self.transformer.wte(input_ids) if inputs_embeds is None else inputs_embeds
        if self.config.input_emb_norm:
            x = x * self.config.d_model ** 0.5
        hidden = [x] if output_hidden_states else None
        for block in self.transformer.blocks:
            x = block(x, attention_mask=attention_mask, position_ids=position_ids)
            if hidden is not None:
                hidden.append(x)
        if logits_slice is not None:  # samplers only need the logits of the current block
            x = x[:, logits_slice[0]:logits_slice[1]]
        x = self.transformer.ln_f(x)
        if "ff_out" in self.transformer:
            logits = self.transformer.ff_out(x)
        else:  # weight tying
            logits = F.linear(x, self.transformer.wte.weight)
        if self.config.scale_logits:
            logits = logits * (1.0 / self.config.d_model ** 0.5)
        return logits, hidden


class LLaDAModelLM(PreTrainedModel):
    """The official class name; `model_type="llada"` is registered with the Auto classes by dllmq."""

    config_class = LLaDAConfig
    base_model_prefix = "model"
    _no_split_modules = ["LLaDALlamaBlock"]
    _supports_sdpa = True

    def __init__(self, config: LLaDAConfig):
        super().__init__(config)
        self.model = LLaDAModel(config)
        self.post_init()

    def _init_weights(self, module):
        std = self.config.init_std
        if isinstance(module, (nn.Linear, nn.Embedding)):
            hf_init.normal_(module.weight, mean=0.0, std=std)
            if getattr(module, "bias", None) is not None:
                hf_init.zeros_(module.bias)
        elif isinstance(module, RMSNorm):
            hf_init.ones_(module.weight)

    def get_input_embeddings(self):
        return self.model.transformer.wte

    def get_output_embeddings(self):
        return self.model.transformer["ff_out"] if "ff_out" in self.model.transformer else None

    def forward(self, input_ids=None, attention_mask=None, position_ids=None, inputs_embeds=None,
                output_hidden_states: bool = False, return_dict: bool = True,
                logits_slice: Optional[tuple] = None, **kwargs):
        """`logits_slice=(start, end)` computes the head only on those positions (a sampler speed-up)."""
        logits, hidden = self.model(input_ids, attention_mask, position_ids, inputs_embeds, output_hidden_states,
                                    logits_slice)
        return CausalLMOutputWithPast(logits=logits, hidden_states=tuple(hidden) if hidden else None)
