"""Evaluation: the lm-eval model class for dLLMs, offline TinyBench/HumanEval tasks, paper presets.

    table = dllmq.evaluate(model, tok, tasks=["tinybench"], limit=None)   # pandas DataFrame
    dllmq.eval.category_summary(table)                                    # one row per category

`evaluate` runs lm-eval's `simple_evaluate` with `DllmqLM` around the in-memory model; every decoding
keyword (steps, gen_length, block_length, remasking, cfg_scale, temperature, mc_samples, batch_size,
seed, ...) goes to `DllmqLM`.
"""
from __future__ import annotations

import contextlib
import logging
import os
from typing import Optional, Sequence, Union

import pandas as pd

from .tasks import GROUPS, TASKS, TaskConfigError, category_of, expand, task_dir, validate_task_dir

COLUMNS = ["task", "category", "metric", "value", "stderr"]
__all__ = ["evaluate", "category_summary", "results_table", "TASKS", "GROUPS", "TaskConfigError"]


def results_table(results: dict) -> pd.DataFrame:
    """lm-eval's results dict -> DataFrame[task, category, metric, value, stderr] (one row per metric)."""
    rows = []
    for task, metrics in results["results"].items():
        if task in GROUPS:
            continue
        for key, value in metrics.items():
            metric, _, filt = key.partition(",")
            if not filt or metric.endswith("_stderr") or not isinstance(value, (int, float)):
                continue
            stderr = metrics.get(f"{metric}_stderr,{filt}")
            rows.append(dict(task=task, category=category_of(task), metric=metric, value=float(value),
                             stderr=float(stderr) if isinstance(stderr, (int, float)) else float("nan")))
    return pd.DataFrame(rows, columns=COLUMNS)


def category_summary(table: pd.DataFrame) -> pd.DataFrame:
    """One row per category: the mean of its tasks' headline metrics, stderr combined as sqrt(sum se^2)/k."""
    heads = {name: spec.metric for name, spec in TASKS.items()}
    keep = table[[heads.get(t, m) == m for t, m in zip(table["task"], table["metric"])]]
    rows = []
    for category, group in keep.groupby("category", sort=False):
        k = len(group)
        rows.append(dict(category=category, value=group["value"].mean(),
                         stderr=(group["stderr"].pow(2).sum() ** 0.5) / k, tasks=", ".join(group["task"])))
    return pd.DataFrame(rows, columns=["category", "value", "stderr", "tasks"])


@contextlib.contextmanager
def _no_environment_probe():
    """simple_evaluate records pip/git/torch environment info after every run by spawning subprocesses
    (seconds per call); a sweep of many quantized variants does not need it, so record versions only."""
    import lm_eval.evaluator as ev

    def versions_only(storage: dict) -> None:
        import torch
        import transformers
        storage["pretty_env_info"] = f"torch {torch.__version__}, transformers {transformers.__version__}"

    saved = ev.add_env_info, ev.get_git_commit_hash
    ev.add_env_info, ev.get_git_commit_hash = versions_only, lambda: None
    try:
        yield
    finally:
        ev.add_env_info, ev.get_git_commit_hash = saved


def evaluate(model, tok, tasks: Union[str, Sequence[str]] = ("tinybench",), limit: Optional[Union[int, float]] = None,
             num_fewshot: Optional[int] = None, include_path: Optional[str] = None, log_samples: bool = False,
             verbose: bool = False, **decoding) -> pd.DataFrame:
    """Evaluate an in-memory dLLM on lm-eval tasks (default: TinyBench, offline) -> DataFrame.

    tasks: our names (`TASKS`, `GROUPS`) or any lm-eval task (those need the hub); limit: documents per
    task (int) or a fraction (float); decoding: keyword arguments of `DllmqLM`."""
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    from .lm import DllmqLM

    if limit is not None and (not isinstance(limit, (int, float)) or limit <= 0):
        raise ValueError(f"limit={limit!r} must be None, a positive int (documents) or a fraction in (0, 1]")
    names = expand(tasks)
    if not names:
        raise ValueError("tasks is empty; e.g. tasks=['tinybench'] (groups: %s)" % ", ".join(GROUPS))
    ours_like = [n for n in names if n.startswith("tinybench") and n not in TASKS]
    if ours_like:  # fail fast, before indexing lm-eval's own task library
        raise ValueError(f"tasks {ours_like} are unknown; TinyBench tasks: {sorted(TASKS) + sorted(GROUPS)}")
    paths = [str(task_dir())]
    if include_path:
        validate_task_dir(include_path)
        paths.append(str(include_path))
    ours = all(n in TASKS for n in names)
    manager = TaskManager(include_path=paths, include_defaults=not ours)
    unknown = [n for n in names if not manager.match_tasks([n])]
    if unknown:
        raise ValueError(f"tasks {unknown} are unknown; ours: {sorted(TASKS) + sorted(GROUPS)} "
                         "(or any lm-eval task name / a task in include_path)")
    lm = DllmqLM(model=model, tokenizer=tok, **decoding)
    level = logging.getLogger("lm_eval").level
    if not verbose:
        logging.getLogger("lm_eval").setLevel(logging.ERROR)
    try:
        with _no_environment_probe():
            results = simple_evaluate(model=lm, tasks=names, limit=limit, num_fewshot=num_fewshot,
                                      task_manager=manager, log_samples=log_samples, bootstrap_iters=1000,
                                      verbosity="ERROR" if not verbose else None)
    finally:
        logging.getLogger("lm_eval").setLevel(level)
    if results is None:  # a non-zero rank of a data-parallel launch: lm-eval reports on rank 0 only
        return pd.DataFrame(columns=COLUMNS)
    table = results_table(results)
    if log_samples:
        table.attrs["samples"] = results.get("samples")
    return table
