"""lm-eval `process_results` functions of the offline tasks (one document, one generation -> metrics)."""
from __future__ import annotations

from .grading import check_code, math_correct

HUMANEVAL_TIMEOUT = 10.0


def process_math(doc: dict, results: list) -> dict:
    """exact_match: the final number of the generation equals the target."""
    return {"exact_match": float(math_correct(results[0], doc["target"]))}


def process_code(doc: dict, results: list) -> dict:
    """pass@1: the completed function passes its hidden asserts in the sandbox."""
    return {"pass@1": float(check_code(doc["prompt"], results[0], doc["tests"], doc.get("entry_point")).passed)}


def process_humaneval(doc: dict, results: list) -> dict:
    """pass@1 on HumanEval: prompt + completion + the problem's `check` run in the sandbox."""
    run = check_code(doc["prompt"], results[0], doc["test"], doc["entry_point"], timeout=HUMANEVAL_TIMEOUT)
    return {"pass@1": float(run.passed)}
