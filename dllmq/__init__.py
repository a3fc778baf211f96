"""dllmq: learn, reproduce and extend post-training quantization of diffusion LLMs.

The public API is small and imported lazily (importing dllmq loads no model, fetches nothing). Importing
dllmq also makes official LLaDA/Dream checkpoints loadable with `transformers.AutoModel.from_pretrained`
(no remote code; the registration waits until transformers loads its Auto classes):

    model, tok = dllmq.load_model("tiny")
    gen = dllmq.generate(model, tok, prompts, steps=64, gen_length=64, block_length=16, trace=True)
    ll = dllmq.loglikelihood(model, tok, [(context, continuation)], mc_samples=128)
    acts = dllmq.collect_activations(model, calib)
    qmodel, report = dllmq.quantize(model, dllmq.Recipe.parse("gptq:w4a16g128"), calib)
    table = dllmq.evaluate(qmodel, tok, tasks=["tinybench"])
"""
from __future__ import annotations

import importlib

from .models.registration import install_auto_registration

__version__ = "0.1.0"

# official LLaDA/Dream checkpoints load through transformers' Auto classes without remote code; this only
# arms a hook and registers once transformers loads its Auto modules (see dllmq.models.registration)
install_auto_registration()

_EXPORTS = {
    "load_model": "dllmq.models",
    "get_layout": "dllmq.models",
    "Layout": "dllmq.models",
    "generate": "dllmq.decoding",
    "Generation": "dllmq.decoding",
    "loglikelihood": "dllmq.likelihood",
    "collect_activations": "dllmq.activations",
    "get_calibration": "dllmq.calibration",
    "Recipe": "dllmq.quant",
    "quantize": "dllmq.quant",
    "evaluate": "dllmq.eval",
    "check_env": "dllmq.env",
    "device": "dllmq.env",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'dllmq' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_EXPORTS))
