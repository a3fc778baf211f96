"""Shared fixtures: tiny random models of each family, the trained tiny model and SmolLM2 (session-wide)."""
import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture
def tiny_llada():
    from dllmq.models import build_random_model
    return build_random_model("llada", seed=0)


@pytest.fixture
def tiny_dream():
    from dllmq.models import build_random_model
    return build_random_model("dream", seed=0)


@pytest.fixture
def tiny_llama():
    from dllmq.models import build_random_model
    return build_random_model("llama", seed=0)


@pytest.fixture(scope="session")
def _tiny_trained_cached():
    from dllmq.models import load_model
    return load_model("tiny", device="cpu")


@pytest.fixture
def tiny_trained(_tiny_trained_cached):
    """The shipped trained tiny LLaDA (shared; deep-copy the model before modifying it)."""
    return _tiny_trained_cached


@pytest.fixture(scope="session")
def smollm2():
    """SmolLM2-135M-Instruct from the offline GGUF wheel (real AR model with massive activations).

    Shared across the session: deep-copy the model before modifying it."""
    from dllmq.models import load_model
    return load_model("smollm2-135m", device="cpu")
