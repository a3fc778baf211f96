"""The built-in cell runner: load the model, quantize it with the cell's recipe, evaluate the cell's task.

Task names a cell may carry:
  lm-eval paper tasks ("winogrande", "gsm8k", ...)  the paper's presets through lm-eval (eval/presets.py)
  "tinybench" or one TinyBench task                 `dllmq.evaluate` on the tiny model (offline); variant
                                                    options (steps, gen_length, block_length, remasking, ...)
                                                    go to the sampler
  "fidelity"                                        KL / top-1 agreement vs the FP model on masked text
  "memory"                                          real low-bit storage vs fake quantization (variant: backend)
Models and quantized models are cached, and sweeps order cells so one quantization serves all the
tasks of a (model, recipe) group.
"""
from __future__ import annotations

import time
from typing import Optional

import torch

from ..env import device as default_device


class CellRunner:
    """cell -> metric rows. `settings(cell)` says how the rows were produced (stored with them).
    `run_sweep` checks every cell the way this runner reads it before the first one runs (validate.py)."""

    checks_cells = True  # run_sweep validates model, recipe, task and variant of each cell up front

    def __init__(self, limit=None, device: Optional[str] = None, dtype: Optional[torch.dtype] = None,
                 seed: int = 0, decoding: Optional[dict] = None):
        self.limit, self.seed = limit, seed
        self.decoding = dict(decoding or {})  # defaults for every evaluation (cell variants override)
        self.device = device or default_device()
        self.dtype = dtype
        self._base: dict = {}  # model name -> (model, tok); one kept
        self._quant: dict = {}  # (model, recipe) -> (model, report); one kept
        self._last_quant_time: dict = {}

    # ---- models -------------------------------------------------------------------------------
    def base(self, name: str):
        if name not in self._base:
            from ..models import load_model

            self._base.clear()
            self._quant.clear()
            self._base[name] = load_model(name, device=self.device, dtype=self.dtype)
        return self._base[name]

    def quantized(self, name: str, recipe: str):
        """(model, tok, report) for a recipe string ("fp": the base model itself, report None)."""
        model, tok = self.base(name)
        if recipe == "fp":
            return model, tok, None
        key = (name, recipe)
        if key not in self._quant:
            from ..quant import quantize

            self._quant.clear()
            if self.device.startswith("cuda"):
                torch.cuda.empty_cache()
            start = time.perf_counter()
            qmodel, report = quantize(model, recipe, tok=tok, device=self.device)
            self._last_quant_time[key] = time.perf_counter() - start
            self._quant[key] = (qmodel, report)
        qmodel, report = self._quant[key]
        return qmodel, tok, report

    # ---- the cell -----------------------------------------------------------------------------
    def settings(self, cell) -> dict:
        return {"limit": self.limit, "device": self.device, "seed": self.seed, "decoding": self.decoding,
                "options": cell.options,
                "quantize_s": self._last_quant_time.get((cell.model, cell.recipe))}

    def __call__(self, cell):
        from .tasks import run_task

        model, tok, report = self.quantized(cell.model, cell.recipe)
        return run_task(self, cell, model, tok, report)
