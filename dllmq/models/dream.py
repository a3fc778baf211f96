"""Native Dream (Dream-org/Dream-v0-*-7B) as a transformers PreTrainedModel, no remote code.

Dream is Qwen2.5-7B with bidirectional attention: q/k/v biases, grouped-query attention, RoPE theta
from config. Key names match the official checkpoint:

    model.embed_tokens, model.layers.N.self_attn.{q,k,v,o}_proj, model.layers.N.mlp.{gate,up,down}_proj,
    model.layers.N.input_layernorm / post_attention_layernorm, model.norm, lm_head

RoPE follows Dream's own code by default: cos/sin are computed in fp32, cast to the activation dtype, and
q/k are rotated in that dtype (bf16 on a GPU); `config.rope_full_precision = True` rotates in fp32 instead.
With a padded batch, position ids are the cumulative sum of the attention mask (as the official
sampler does), and padding neither attends nor is attended to.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from transformers import PreTrainedModel
from transformers import initialization as hf_init
from transformers.modeling_outputs import CausalLMOutputWithPast

from .common import RMSNorm, apply_rope, bidirectional_attention, key_padding_mask, rope_cos_sin
from .configs import DreamConfig

__all__ = ["DreamConfig", "DreamModel", "DreamDecoderLayer", "DreamBaseModel"]


class DreamAttention(nn.Module):
    def __init__(self, config: DreamConfig):
        super().__init__()
        d = config.hidden_size
        self.n_heads, self.n_kv_heads = config.num_attention_heads, config.num_key_value_heads
        self.head_dim = d // self.n_heads
        self.rope_theta = config.rope_theta
        self.config = config  # read at forward time: config.rope_full_precision may be switched after loading
        self.q_proj = nn.Linear(d, self.n_heads * self.head_dim, bias=True)
        self.k_proj = nn.Linear(d, self.n_kv_heads * self.head_dim, bias=True)
        self.v_proj = nn.Linear(d, self.n_kv_heads * self.head_dim, bias=True)
        self.o_proj = nn.Linear(self.n_heads * self.head_dim, d, bias=False)
        self.attn_input_quantizer = None  # optional (q, k, v) -> (q, k, v); set by W-A methods

    def forward(self, x, mask, position_ids):
        B, T, _ = x.shape
        q = self.q_proj(x).view(B, T, self.n_heads, self.head_dim).transpose(1, 2)  # (B, nh, T, hs)
        k = self.k_proj(x).view(B, T, self.n_kv_heads, self.head_dim).transpose(1, 2)  # (B, nkv, T, hs)
        v = self.v_proj(x).view(B, T, self.n_kv_heads, self.head_dim).transpose(1, 2)
        cos, sin = rope_cos_sin(position_ids, self.head_dim, self.rope_theta)
        q, k = apply_rope(q, k, cos, sin, full_precision=getattr(self.config, "rope_full_precision", False))
        att = bidirectional_attention(q, k, v, mask, self.attn_input_quantizer)
        return self.o_proj(att.transpose(1, 2).reshape(B, T, -1))


class DreamMLP(nn.Module):
    def __init__(self, config: DreamConfig):
        super().__init__()
        self.gate_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=False)
        self.up_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=False)
        self.down_proj = nn.Linear(config.intermediate_size, config.hidden_size, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class DreamDecoderLayer(nn.Module):
    def __init__(self, config: DreamConfig):
        super().__init__()
        self.self_attn = DreamAttention(config)
        self.mlp = DreamMLP(config)
        self.input_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.post_attention_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)

    def forward(self, x: torch.Tensor, attention_mask: Optional[torch.Tensor] = None,
                position_ids: Optional[torch.Tensor] = None) -> torch.Tensor:
        B, T, _ = x.shape
        if position_ids is None:
            position_ids = _positions(attention_mask, B, T, x.device)
        x = x + self.self_attn(self.input_layernorm(x), key_padding_mask(attention_mask), position_ids)
        return x + self.mlp(self.post_attention_layernorm(x))


def _positions(attention_mask, B, T, device):
    """0..T-1, or cumsum(mask)-1 with a padded batch (official Dream sampler convention)."""
    if attention_mask is None or bool(attention_mask.all()):
        return torch.arange(T, device=device).expand(B, T)
    pos = attention_mask.long().cumsum(-1) - 1
    return pos.masked_fill(attention_mask == 0, 1)


class DreamBaseModel(nn.Module):
    def __init__(self, config: DreamConfig):
        super().__init__()
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(DreamDecoderLayer(config) for _ in range(config.num_hidden_layers))
        self.norm = RMSNorm(config.hidden_size, config.rms_norm_eps)

    def forward(self, input_ids, attention_mask=None, position_ids=None, inputs_embeds=None,
                output_hidden_states: bool = False):
        x = self.embed_tokens(input_ids) if inputs_embeds is None else inputs_embeds
        B, T, _ = x.shape
        if position_ids is None:
            position_ids = _positions(attention_mask, B, T, x.device)
        hidden = [x] if output_hidden_states else None
        for layer in self.layers:
            x = layer(x, attention_mask=attention_mask, position_ids=position_ids)
            if hidden is not None:
                hidden.append(x)
        return self.norm(x), hidden


class DreamModel(PreTrainedModel):
    """The official top-level class name (it is a masked-diffusion LM, not a bare encoder)."""

    config_class = DreamConfig
    base_model_prefix = "model"
    _no_split_modules = ["DreamDecoderLayer"]
    _supports_sdpa = True

    def __init__(self, config: DreamConfig):
        super().__init__(config)
        self.model = DreamBaseModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def _init_weights(self, module):
        std = self.config.initializer_range
        if isinstance(module, (nn.Linear, nn.Embedding)):
            hf_init.normal_(module.weight, mean=0.0, std=std)
            if getattr(module, "bias", None) is not None:
                hf_init.zeros_(module.bias)
        elif isinstance(module, RMSNorm):
            hf_init.ones_(module.weight)

    def get_input_embeddings(self):
        return self.model.embed_tokens

    def get_output_embeddings(self):
        return self.lm_head

    def forward(self, input_ids=None, attention_mask=None, position_ids=None, inputs_embeds=None,
                output_hidden_states: bool = False, return_dict: bool = True,
                logits_slice: Optional[tuple] = None, **kwargs):
        """`logits_slice=(start, end)` computes the head only on those positions (a sampler speed-up)."""
        x, hidden = self.model(input_ids, attention_mask, position_ids, inputs_embeds, output_hidden_states)
        if logits_slice is not None:
            x = x[:, logits_slice[0]:logits_slice[1]]
        logits = self.lm_head(x)
        return CausalLMOutputWithPast(logits=logits, hidden_states=tuple(hidden) if hidden else None)
