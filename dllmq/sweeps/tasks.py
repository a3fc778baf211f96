"""What a cell's task name means: one handler per kind of task, each returning store rows.

  paper lm-eval task ("gsm8k", "arc_easy", ...)  `eval.presets.run_paper_task` (Table A1 settings;
                                                 variant options override them, e.g. steps=64)
  "tinybench", "tinybench_math", ... (TinyBench) `dllmq.evaluate`; variant options (steps, gen_length,
                                                 block_length, remasking, mc_samples) go to the sampler
  "fidelity"                                     KL / top-1 agreement vs the FP model (variant: ratio)
  "memory"                                       real low-bit storage (variant: backend)
"""
from __future__ import annotations

# likelihood on a CPU: fewer Monte-Carlo samples than the paper's 128 (notebook 09 measures the variance)
TINY_DECODING = {"mc_samples": 32, "batch_size": 32}
DECODING_OPTIONS = ("steps", "gen_length", "block_length", "remasking", "mc_samples", "cfg_scale",
                    "temperature", "alg", "seed", "batch_size")


def _decoding(runner, options: dict, cell) -> dict:
    """Sampler keywords: the runner's defaults, overridden by the cell's variant options."""
    unknown = sorted(set(options) - set(DECODING_OPTIONS))
    if unknown:
        raise ValueError(f"cell {cell.key}: variant options {unknown} are unknown for task {cell.task!r}; "
                         f"allowed: {DECODING_OPTIONS}")
    from ..models import is_tiny

    defaults = TINY_DECODING if is_tiny(cell.model) and cell.task != "fidelity" else {}
    return {"seed": runner.seed, **defaults, **runner.decoding, **options}


def _is_tinybench(task: str) -> bool:
    from ..eval.tasks import GROUPS, TASKS

    return task in TASKS or task in GROUPS


def _paper_task(task: str, model_name: str):
    from ..eval.presets import family_of_name, get_task

    family = family_of_name(model_name)
    try:
        return get_task(task, family), family
    except ValueError:
        return None, family


def run_task(runner, cell, model, tok, report) -> list:
    """Rows of one cell (see the module docstring); unknown task names are an error naming the allowed ones."""
    options = cell.options
    if cell.task == "fidelity":
        from .fidelity import fidelity_rows

        fp_model, _ = runner.base(cell.model)
        return fidelity_rows(fp_model, model, tok, cell.model, ratio=float(options.get("ratio", 0.5)),
                             seed=runner.seed)
    if cell.task == "memory":
        from .lowbit import FP_BACKENDS, memory_rows

        backend = options.get("backend")
        if backend is None:
            raise ValueError(f"cell {cell.key}: task 'memory' needs a backend option in its variant")
        fp_model, _ = runner.base(cell.model)
        q_model = None if backend in FP_BACKENDS else model
        return memory_rows(fp_model, q_model, tok, cell.model, backend)
    if _is_tinybench(cell.task):
        from ..eval import evaluate

        frame = evaluate(model, tok, tasks=[cell.task], limit=runner.limit, progress=False,
                         **_decoding(runner, options, cell))
        frame = frame.assign(n=None) if "n" not in frame else frame
        return frame.to_dict("records")
    task, family = _paper_task(cell.task, cell.model)
    if task is not None:
        from ..eval.presets import run_paper_task

        return run_paper_task(model, tok, task, family, limit=runner.limit, **_decoding(runner, options, cell))
    from ..eval.presets import LLADA_TASKS
    from ..eval.tasks import GROUPS, TASKS

    allowed = ["fidelity", "memory", *TASKS, *GROUPS, *(t.lm_eval_task for t in LLADA_TASKS)]
    raise ValueError(f"cell task={cell.task!r} is unknown; allowed: {allowed}")
