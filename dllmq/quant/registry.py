"""Method registry: method name -> module, imported lazily.

A method module exposes

    apply(model, layout, recipe, calib) -> QuantReport     quantize `model` in place
    PROPAGATE = "quantized" | "fp" | None                  what its sequential pass feeds the next block
                                                           (None: the method does not use the engine)
    KNOBS = {name: default}        every recipe knob of the method with its default (the only place it lives)
    NEEDS_CALIBRATION = bool       (optional, default True)
"""
from __future__ import annotations

import importlib
from types import ModuleType

METHODS = {
    "rtn": "dllmq.quant.rtn",
    "gptq": "dllmq.quant.gptq",
    "awq": "dllmq.quant.awq",
    "smoothquant": "dllmq.quant.smoothquant",
    "quarot": "dllmq.quant.quarot",
    "duquant": "dllmq.quant.duquant",
}
WEIGHT_ONLY_METHODS = ("gptq", "awq")  # a_bits must be 16
WEIGHT_ACTIVATION_METHODS = ("smoothquant", "duquant")  # a_bits must be < 16 (quarot and rtn accept both)


def check_method(name: str) -> str:
    if name not in METHODS:
        raise ValueError(f"method={name!r} is unknown; allowed: {sorted(METHODS)}")
    return name


def get_method(name: str) -> ModuleType:
    """Import and return the module implementing `name` (clear error when it is missing or incomplete)."""
    check_method(name)
    try:
        module = importlib.import_module(METHODS[name])
    except ModuleNotFoundError as err:
        if err.name == METHODS[name]:
            raise NotImplementedError(f"method {name!r} is registered but its module {METHODS[name]} "
                                      "is not available in this installation") from err
        raise
    if not callable(getattr(module, "apply", None)):
        raise NotImplementedError(f"{METHODS[name]} does not define apply(model, layout, recipe, calib)")
    return module


def method_knobs(name: str) -> dict:
    """The knobs a method module declares, name -> default (empty when the module is missing)."""
    check_method(name)
    try:
        module = importlib.import_module(METHODS[name])
    except ModuleNotFoundError:
        return {}
    return dict(getattr(module, "KNOBS", {}))


def needs_calibration(name: str) -> bool:
    return bool(getattr(get_method(name), "NEEDS_CALIBRATION", True))
