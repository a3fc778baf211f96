"""Beyond the paper: five studies the paper lists as open (Sec. 5, future work), each a sweep preset.

  steps_x_bits      diffusion steps x bit-width at a fixed generation length (paper: steps = gen length only)
  remasking_x_bits  low-confidence vs random remasking x bit-width (paper: low-confidence only)
  calibration       clean vs mask-aware calibration (the paper calibrates on clean text; a dLLM reads masks)
  lowbit            real low-bit storage (packed int4, bitsandbytes NF4/INT8) vs fake quantization:
                    measured weight memory, latency, fidelity (the paper reports none)
  dream_wa          weight-activation quantization of Dream (the paper ran it on LLaDA only)

With a tiny model each runs on a CPU in minutes (TinyBench; `fidelity` for the random Dream); with a
hub id it builds the GPU grid of the same question. `dllmq.viz.results.plot_study(name, frame)` draws it
from a store.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..models import is_tiny
from ..quant import Recipe
from .sweep import grid

STEPS_TINY = (4, 8, 16, 32)  # TinyBench math: gen length 32, blocks of 8
STEPS_GPU = (32, 64, 128, 256)  # GSM8K: gen length 256, blocks of 32 (Table A1)
REMASKING = ("low_confidence", "random")
MASK_RATIOS = (None, 0.5, "uniform")
LOWBIT_FP = ("fp32", "bf16", "nf4", "int8")
LOWBIT_Q = ("fake", "packed", "packed-cached")
WA_ROWS = (("smoothquant", "w8a8"), ("quarot", "w8a8"), ("duquant", "w8a8"),
           ("smoothquant", "w4a4"), ("quarot", "w4a4"), ("duquant", "w4a4"))


def recipe_for(model: str, method: str, setting: str, **calib) -> str:
    """The paper preset of `method` at `setting` fitted to `model`, calibration fields overridden by `calib`."""
    return str(Recipe.paper(method, setting, model=model, calib=calib or None))


def _weight_only(model: str, reduced: bool) -> list:
    rows = [("gptq", "w3a16g128")] if reduced else [("gptq", "w4a16g128"), ("gptq", "w3a16g128"),
                                                      ("rtn", "w3a16g128")]
    return ["fp"] + [recipe_for(model, m, s) for m, s in rows]


def steps_x_bits(model: str, reduced: bool = False) -> list:
    """Generation accuracy at fewer steps than tokens (several tokens per step) for FP, W4 and W3."""
    if is_tiny(model):
        steps = (8, 32) if reduced else STEPS_TINY
        variants = [{"steps": s, "gen_length": 32, "block_length": 8} for s in steps]
        return grid([model], _weight_only(model, reduced), ["tinybench_math"], variants)
    variants = [{"steps": s, "gen_length": 256, "block_length": 32} for s in STEPS_GPU]
    return grid([model], _weight_only(model, reduced), ["gsm8k"], variants)


def remasking_x_bits(model: str, reduced: bool = False) -> list:
    """Low-confidence vs random remasking for FP, weight-only and W-A quantized models."""
    recipes = _weight_only(model, reduced)
    if not reduced:
        recipes.append(recipe_for(model, "duquant", "w4a4"))
    variants = [{"remasking": r} for r in REMASKING]
    tasks = ["tinybench_math"] if is_tiny(model) else ["gsm8k"]
    if is_tiny(model) and not reduced:
        tasks.append("tinybench_code")
    return grid([model], recipes, tasks, variants)


def calibration(model: str, reduced: bool = False) -> list:
    """The same methods calibrated on clean text, on text with 50% masks, and with LLaDA's mask schedule."""
    rows = [("gptq", "w3a16g128")] if reduced else [("gptq", "w3a16g128"), ("awq", "w3a16g128"),
                                                      ("smoothquant", "w4a4"), ("duquant", "w4a4")]
    ratios = (None, "uniform") if reduced else MASK_RATIOS
    recipes = ["fp"] + [recipe_for(model, m, s, mask_ratio=r) for m, s in rows for r in ratios]
    if is_tiny(model):
        tasks = ["tinybench_general"] if reduced else ["tinybench"]
    else:
        tasks = ["arc_challenge", "gsm8k"]
    return grid([model], recipes, tasks)


def lowbit(model: str, reduced: bool = False) -> list:
    """Weight memory, latency and fidelity of each storage format."""
    fp_backends = ("fp32", "nf4") if reduced else LOWBIT_FP
    q_backends = ("fake", "packed") if reduced else LOWBIT_Q
    if not is_tiny(model):  # the bitsandbytes path of quant/backends.py runs on CPU only
        fp_backends = ("bf16",)
    recipe = recipe_for(model, "rtn" if reduced else "gptq", "w4a16g128")
    cells = grid([model], ["fp"], ["memory"], [{"backend": b} for b in fp_backends])
    return cells + grid([model], [recipe], ["memory"], [{"backend": b} for b in q_backends])


def dream_wa(model: str, reduced: bool = False) -> list:
    """SmoothQuant / QuaRot / DuQuant at W8A8 and W4A4 on Dream: Table 5's tasks on a GPU, the output
    fidelity of a random tiny Dream on a CPU."""
    if model in ("tiny", "tiny-random", "tiny-random-llada"):
        model = "tiny-random-dream"
    rows = (("smoothquant", "w8a8"), ("smoothquant", "w4a4")) if reduced else WA_ROWS  # reduced: the cheapest
    recipes = [recipe_for(model, m, s) for m, s in rows]
    if is_tiny(model):
        return grid([model], recipes, ["fidelity"])
    return grid([model], ["fp", *recipes], ["winogrande", "piqa", "arc_challenge", "arc_easy"])


@dataclass(frozen=True)
class Study:
    """One open question of the paper as a grid: `build(model, reduced) -> cells`."""

    name: str
    build: Callable
    question: str


STUDIES = {study.name: study for study in (
    Study("steps_x_bits", steps_x_bits, "do fewer diffusion steps hurt a quantized model more?"),
    Study("remasking_x_bits", remasking_x_bits, "does random remasking change what quantization costs?"),
    Study("calibration", calibration, "does calibrating on masked inputs (what a dLLM sees) help?"),
    Study("lowbit", lowbit, "what do real low-bit formats save in memory and cost in speed?"),
    Study("dream_wa", dream_wa, "do the W-A findings carry over to Dream?"),
)}


def run_study(name: str, model: str = "tiny", store: str = "results/studies.jsonl", limit=None,
              reduced: bool = False, progress: bool = True, runner=None):
    """Run (or resume) study `name` into `store`; return its records as a DataFrame (draw them with
    `dllmq.viz.results.plot_study(name, frame)`)."""
    from .runner import CellRunner
    from .store import ResultStore
    from .sweep import run_sweep

    if name not in STUDIES:
        raise ValueError(f"study={name!r} is unknown; allowed: {sorted(STUDIES)}")
    if model == "tiny":
        from ..models import tiny_default

        model = tiny_default()
    cells = STUDIES[name].build(model, reduced)
    run_sweep(cells, runner or CellRunner(limit=limit), store, progress=progress, desc=name)
    frame = ResultStore(store).to_frame()
    frame = frame[frame["cell"].isin({c.id for c in cells})].reset_index(drop=True)
    return frame
