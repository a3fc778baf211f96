"""Layout: how PTQ and activation code sees a model, whatever its family.

Every block exposes the same roles

    attn_norm -> q, k, v -> o        mlp_norm -> gate, up -> down

plus the model-level `embed`, `final_norm` and `head`. A method asks for `layout.blocks[i].linears["down"]`
and never names `ff_out` or `o_proj`. A family is one small entry in `FAMILIES`.

LLaDA's name trap lives here and only here: `transformer.blocks.N.ff_out` is the down projection,
`transformer.ff_out` is the LM head.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import torch.nn as nn

ROLES = ("q", "k", "v", "o", "gate", "up", "down")
# Data-flow order in which a sequential method quantizes a block (GPTQ's true-sequential groups).
ROLE_GROUPS = (("q", "k", "v"), ("o",), ("gate", "up"), ("down",))
NORM_ROLES = ("attn_norm", "mlp_norm")


@dataclass(frozen=True)
class Family:
    """Attribute paths of one model family. Block paths are relative to a block."""

    name: str
    blocks: str  # path from the model to the ModuleList of blocks
    embed: str
    final_norm: str
    head: Optional[str]  # None when tied to the embedding
    block_paths: dict  # role -> path inside a block (linears and norms)
    attention: Optional[str]  # path inside a block of the module holding attn_input_quantizer, "" = block


_QWEN_LLAMA_BLOCK = {
    "attn_norm": "input_layernorm", "q": "self_attn.q_proj", "k": "self_attn.k_proj",
    "v": "self_attn.v_proj", "o": "self_attn.o_proj", "mlp_norm": "post_attention_layernorm",
    "gate": "mlp.gate_proj", "up": "mlp.up_proj", "down": "mlp.down_proj",
}

FAMILIES = {
    "llada": Family(
        name="llada", blocks="model.transformer.blocks", embed="model.transformer.wte",
        final_norm="model.transformer.ln_f", head="model.transformer.ff_out",
        block_paths={"attn_norm": "attn_norm", "q": "q_proj", "k": "k_proj", "v": "v_proj", "o": "attn_out",
                     "mlp_norm": "ff_norm", "gate": "ff_proj", "up": "up_proj", "down": "ff_out"},
        attention="",
    ),
    "dream": Family(
        name="dream", blocks="model.layers", embed="model.embed_tokens", final_norm="model.norm",
        head="lm_head", block_paths=_QWEN_LLAMA_BLOCK, attention="self_attn",
    ),
    # Autoregressive baselines through transformers (Llama, Qwen2, SmolLM2, Mistral share the tree).
    "llama": Family(
        name="llama", blocks="model.layers", embed="model.embed_tokens", final_norm="model.norm",
        head="lm_head", block_paths=_QWEN_LLAMA_BLOCK, attention=None,
    ),
}
_MODEL_TYPE_TO_FAMILY = {"llada": "llada", "dream": "dream", "llama": "llama", "qwen2": "llama", "mistral": "llama"}


def _get(root: nn.Module, path: str) -> nn.Module:
    return root.get_submodule(path) if path else root


def _set(root: nn.Module, path: str, module: nn.Module) -> None:
    parent, _, name = path.rpartition(".")
    setattr(_get(root, parent), name, module)


@dataclass
class BlockLayout:
    """One transformer block seen through roles."""

    index: int
    module: nn.Module
    paths: dict  # role -> path inside the block
    attention: Optional[nn.Module]  # module that owns `attn_input_quantizer`, None if unsupported

    @property
    def linears(self) -> dict:
        """role -> Linear (or the QuantLinear that replaced it), in ROLES order."""
        return {r: _get(self.module, self.paths[r]) for r in ROLES}

    @property
    def attn_norm(self) -> nn.Module:
        return _get(self.module, self.paths["attn_norm"])

    @property
    def mlp_norm(self) -> nn.Module:
        return _get(self.module, self.paths["mlp_norm"])

    def get(self, role: str) -> nn.Module:
        if role not in self.paths:
            raise KeyError(f"role={role!r} is unknown; allowed: {sorted(self.paths)}")
        return _get(self.module, self.paths[role])

    def set(self, role: str, module: nn.Module) -> None:
        """Swap the module that plays `role` (e.g. an nn.Linear for a QuantLinear)."""
        if role not in self.paths:
            raise KeyError(f"role={role!r} is unknown; allowed: {sorted(self.paths)}")
        _set(self.module, self.paths[role], module)

    def name_of(self, role: str, prefix: str) -> str:
        return f"{prefix}.{self.index}.{self.paths[role]}"


@dataclass
class Layout:
    """The roles of a whole model. Build it with `get_layout(model)`."""

    family: Family
    model: nn.Module
    blocks: list = field(default_factory=list)

    @property
    def blocks_module(self) -> nn.ModuleList:
        return _get(self.model, self.family.blocks)

    @property
    def embed(self) -> nn.Embedding:
        return _get(self.model, self.family.embed)

    @property
    def final_norm(self) -> nn.Module:
        return _get(self.model, self.family.final_norm)

    @property
    def head(self) -> nn.Module:
        """The LM head (for a tied model, the embedding whose weight it shares)."""
        if self.family.head is None or not _has(self.model, self.family.head):
            return self.embed
        return _get(self.model, self.family.head)

    @property
    def config(self):
        return self.model.config

    @property
    def hidden_size(self) -> int:
        return self.config.hidden_size

    @property
    def n_heads(self) -> int:
        return self.config.num_attention_heads

    @property
    def n_kv_heads(self) -> int:
        return getattr(self.config, "num_key_value_heads", None) or self.n_heads

    @property
    def head_dim(self) -> int:
        return getattr(self.config, "head_dim", None) or self.hidden_size // self.n_heads

    @property
    def intermediate_size(self) -> int:
        return self.config.intermediate_size

    def linear_names(self) -> dict:
        """Full module name -> (block index, role) for every block linear."""
        return {b.name_of(r, self.family.blocks): (b.index, r) for b in self.blocks for r in ROLES}

    def set_attention_input_quantizer(self, index: int, fn) -> None:
        """Install a (q, k, v) -> (q, k, v) fake quantizer on block `index`'s attention matmul inputs."""
        att = self.blocks[index].attention
        if att is None:
            raise NotImplementedError(
                f"family={self.family.name!r} has no attention-input hook; quantize the q/k/v projection "
                "outputs instead (QuantLinear output quantizer)")
        att.attn_input_quantizer = fn


def _has(root: nn.Module, path: str) -> bool:
    try:
        root.get_submodule(path)
        return True
    except AttributeError:
        return False


def family_of(model: nn.Module) -> str:
    """Family name from config.model_type; a clear error for unsupported models."""
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    key = (model_type or "").lower()
    if key not in _MODEL_TYPE_TO_FAMILY:
        raise ValueError(f"model_type={model_type!r} has no Layout; supported: {sorted(_MODEL_TYPE_TO_FAMILY)}")
    return _MODEL_TYPE_TO_FAMILY[key]


def get_layout(model: nn.Module) -> Layout:
    """Map a LLaDA, Dream or Llama/Qwen2-style model onto roles; every block Linear gets exactly one role."""
    fam = FAMILIES[family_of(model)]
    layout = Layout(family=fam, model=model)
    for i, block in enumerate(_get(model, fam.blocks)):
        attention = None if fam.attention is None else _get(block, fam.attention)
        layout.blocks.append(BlockLayout(index=i, module=block, paths=dict(fam.block_paths), attention=attention))
    return layout


def is_diffusion(model: nn.Module) -> bool:
    """True for the masked-diffusion families (LLaDA, Dream)."""
    return family_of(model) in ("llada", "dream")
