"""`dllmq eval`: lm-eval's command line with the dLLM model class and our offline tasks added.

    dllmq eval --tasks tinybench --model_args pretrained=tiny --limit 20
    dllmq eval --tasks tinybench_math_fewshot,tinybench_code --model_args pretrained=tiny,steps=32,gen_length=32
    dllmq eval --tasks gsm8k --num_fewshot 4 --model_args pretrained=GSAI-ML/LLaDA-8B-Instruct,gen_length=256,steps=256,block_length=32 --device cuda

Every argument is lm-eval's (`lm-eval run --help`); `--model` defaults to `dllmq`. Our task files
(TinyBench, humaneval_offline) are always on the include path; a user `--include_path DIR` is validated
and added next to them.
"""
from __future__ import annotations

import shutil
import sys
from typing import Optional

from .tasks import GROUPS, TASKS, task_dir, validate_task_dir


def _pop_option(argv: list, name: str) -> Optional[str]:
    """Remove `--name VALUE` or `--name=VALUE` from argv; returns VALUE (None when absent)."""
    for i, arg in enumerate(argv):
        if arg == name:
            if i + 1 >= len(argv):
                raise SystemExit(f"dllmq eval: {name} needs a value")
            value = argv[i + 1]
            del argv[i:i + 2]
            return value
        if arg.startswith(name + "="):
            del argv[i]
            return arg.split("=", 1)[1]
    return None


def build_argv(argv: list) -> list:
    """lm-eval `run` arguments: our model class by default, our task dir (plus the user's) included."""
    argv = list(argv)
    if argv and argv[0] == "run":
        argv = argv[1:]
    tasks_dir = task_dir()
    user_path = _pop_option(argv, "--include_path")
    if user_path:
        validate_task_dir(user_path)
        target = tasks_dir / "user_tasks"
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(user_path, target)  # keeps `!function` modules next to their YAML files
    if not any(a == "--model" or a.startswith("--model=") for a in argv):
        argv += ["--model", "dllmq"]
    return ["run", *argv, "--include_path", str(tasks_dir)]


def main(argv: Optional[list] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        print("\nour tasks:", ", ".join(list(TASKS) + list(GROUPS)))
        return 0
    from lm_eval.__main__ import cli_evaluate

    from . import lm  # noqa: F401  registers the "dllmq" model class with lm-eval

    saved = sys.argv
    sys.argv = ["lm-eval", *build_argv(argv)]
    try:
        cli_evaluate()
    finally:
        sys.argv = saved
    return 0
