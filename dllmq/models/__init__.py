"""Native LLaDA and Dream classes, AR baselines via transformers, the family Layout and load_model().

Names are imported lazily (PEP 562), so `dllmq.models.registration` and `dllmq.models.configs` load
without the modeling stack; `from dllmq.models import load_model` works as before.
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "DreamConfig": "configs", "LLaDAConfig": "configs",
    "DreamModel": "dream", "LLaDAModelLM": "llada",
    "FAMILIES": "layout", "NORM_ROLES": "layout", "ROLE_GROUPS": "layout", "ROLES": "layout", "Layout": "layout",
    "family_of": "layout", "get_layout": "layout", "is_diffusion": "layout",
    "TINY_MAX_WIDTH": "loading", "build_random_model": "loading", "is_tiny": "loading", "known_models": "loading",
    "load_model": "loading", "load_tokenizer": "loading", "tiny_config": "loading", "tiny_default": "loading",
    "register_auto_classes": "registration",
}

__all__ = [
    "DreamConfig", "DreamModel", "LLaDAConfig", "LLaDAModelLM", "Layout", "get_layout", "family_of",
    "is_diffusion", "ROLES", "ROLE_GROUPS", "NORM_ROLES", "FAMILIES", "load_model", "load_tokenizer",
    "build_random_model", "known_models", "tiny_config", "is_tiny", "tiny_default", "TINY_MAX_WIDTH",
    "register_auto_classes",
]


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_EXPORTS))
