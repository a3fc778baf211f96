"""Configuration classes of the native LLaDA and Dream models (field names as in the official config.json).

They live apart from the modeling code so the Auto-class registration can import them without the
heavy modeling stack (`dllmq.models.registration`).
"""
from __future__ import annotations

from typing import Optional

from transformers import PretrainedConfig


class LLaDAConfig(PretrainedConfig):
    """Field names as in the official LLaDA config.json (OLMo lineage).

    `rope_full_precision` (official field, True in the released configs) rotates q/k in fp32; False rotates
    in the activation dtype."""

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


class DreamConfig(PretrainedConfig):
    """Qwen2-style field names, as in Dream's config.json (model_type "Dream").

    `rope_full_precision` is the kit's switch (absent from official configs): False, the default, rotates q/k
    in the activation dtype with cos/sin cast to it, as Dream's own code does; True rotates in fp32."""

    model_type = "Dream"

    def __init__(
        self,
        vocab_size: int = 152064,
        hidden_size: int = 3584,
        intermediate_size: int = 18944,
        num_hidden_layers: int = 28,
        num_attention_heads: int = 28,
        num_key_value_heads: int = 4,
        hidden_act: str = "silu",
        max_position_embeddings: int = 131072,
        initializer_range: float = 0.02,
        rms_norm_eps: float = 1e-6,
        use_cache: bool = False,
        tie_word_embeddings: bool = False,
        rope_theta: float = 1000000.0,
        rope_scaling: Optional[dict] = None,
        attention_dropout: float = 0.0,
        mask_token_id: int = 151666,
        rope_full_precision: bool = False,
        pad_token_id: int = 151643,
        bos_token_id: int = 151643,
        eos_token_id: int = 151643,
        **kwargs,
    ):
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.intermediate_size = intermediate_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.num_key_value_heads = num_key_value_heads
        self.hidden_act = hidden_act
        self.max_position_embeddings = max_position_embeddings
        self.initializer_range = initializer_range
        self.rms_norm_eps = rms_norm_eps
        self.use_cache = use_cache
        self.rope_theta = rope_theta
        if rope_scaling is not None:  # official configs carry null; only keep a real scaling dict
            kwargs["rope_scaling"] = rope_scaling
        self.attention_dropout = attention_dropout
        self.mask_token_id = mask_token_id
        self.rope_full_precision = rope_full_precision
        super().__init__(pad_token_id=pad_token_id, bos_token_id=bos_token_id, eos_token_id=eos_token_id,
                         tie_word_embeddings=tie_word_embeddings, **kwargs)
