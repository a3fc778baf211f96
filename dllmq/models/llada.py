"""Native LLaDA (GSAI-ML/LLaDA-8B-*, LLaDA-1.5) as a transformers PreTrainedModel, no remote code.

Config fields, module tree and parameter names match the official checkpoint, so its safetensors load
with every key matched:

    model.transformer.wte                         Embedding(vocab, d_model)
    model.transformer.blocks.N.attn_norm/ff_norm  RMSNorm (fp32 inside)
    model.transformer.blocks.N.q_proj/k_proj/v_proj/attn_out
    model.transformer.blocks.N.ff_proj (gate, silu) / up_proj / ff_out (down projection)
    model.transformer.ln_f                        final RMSNorm
    model.transformer.ff_out                      LM head (untied)   <- name trap: not the block ff_out

Attention is bidirectional SDPA; RoPE is rotate-half, computed in fp32 when `config.rope_full_precision`
(True in the official configs, as the official code does), else in the activation dtype; positions are 0..T-1
as in the official code (RoPE is relative, so left padding with masked keys does not change the result).
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
from .configs import LLaDAConfig

__all__ = ["LLaDAConfig", "LLaDAModelLM", "LLaDALlamaBlock", "LLaDAModel"]


class LLaDALlamaBlock(nn.Module):
    """One pre-norm transformer block: x + attn_out(attn(attn_norm x)); x + ff_out(silu(ff_proj n) * up_proj n)."""

    def __init__(self, config: LLaDAConfig):
        super().__init__()
        d, nh, nkv = config.d_model, config.n_heads, config.n_kv_heads
        self.n_heads, self.n_kv_heads, self.head_dim = nh, nkv, d // nh
        self.rope_theta = config.rope_theta
        self.config = config  # read at forward time: config.rope_full_precision may be switched after loading
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
        q, k = apply_rope(q, k, cos, sin, full_precision=self.config.rope_full_precision)
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
