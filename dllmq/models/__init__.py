"""Native LLaDA and Dream classes, AR baselines via transformers, the family Layout and load_model()."""
from .dream import DreamConfig, DreamModel
from .layout import FAMILIES, NORM_ROLES, ROLE_GROUPS, ROLES, Layout, family_of, get_layout, is_diffusion
from .llada import LLaDAConfig, LLaDAModelLM
from .loading import build_random_model, known_models, load_model, load_tokenizer, tiny_config

__all__ = [
    "DreamConfig", "DreamModel", "LLaDAConfig", "LLaDAModelLM", "Layout", "get_layout", "family_of",
    "is_diffusion", "ROLES", "ROLE_GROUPS", "NORM_ROLES", "FAMILIES", "load_model", "load_tokenizer",
    "build_random_model", "known_models", "tiny_config",
]
