"""The code sandbox and the math answer extraction."""
import time

import pytest

from dllmq.eval.grading import check_code, code_program, extract_answer, math_correct, run_program
from dllmq.eval.scoring import process_code, process_math

PROMPT = 'def add_two(x):\n    """Return x plus 2."""\n'
TESTS = "assert add_two(1) == 3\nassert add_two(-2) == 0\n"


def test_correct_program_passes_and_wrong_one_fails():
    assert check_code(PROMPT, "    return x + 2", TESTS).status == "passed"
    wrong = check_code(PROMPT, "    return x + 3", TESTS)
    assert wrong.status == "failed" and "AssertionError" in wrong.output
    assert check_code(PROMPT, "    return (", TESTS).status == "failed"  # syntax error


def test_infinite_loop_times_out_without_hanging():
    start = time.time()
    run = check_code(PROMPT, "    while True:\n        pass", TESTS, timeout=1.0)
    assert run.status == "timeout" and not run.passed
    assert time.time() - start < 15


def test_sandbox_sees_neither_the_project_nor_installed_packages():
    probe = ("import os, sys\n"
             "assert sorted(os.listdir('.')) == ['program.py'], os.listdir('.')\n"
             "assert not any('site-packages' in p for p in sys.path), sys.path\n"
             "assert 'HOME' not in os.environ and 'PYTHONPATH' not in os.environ\n"
             "try:\n    import dllmq\nexcept ImportError:\n    pass\nelse:\n    raise SystemExit(3)\n")
    run = run_program(probe)
    assert run.passed, run.output


def test_humaneval_style_check_function_is_called():
    tests = "def check(candidate):\n    assert candidate(2) == 4\n"
    assert code_program(PROMPT, "    return x + 2", tests, "add_two").endswith("check(add_two)\n")
    assert check_code(PROMPT, "    return x + 2", tests, "add_two").passed
    assert not check_code(PROMPT, "    return x + 1", tests, "add_two").passed


def test_bad_timeout_is_rejected():
    with pytest.raises(ValueError, match="timeout"):
        run_program("pass", timeout=0)


@pytest.mark.parametrize("text, expected", [
    (" 7+5=12.\n#### 12", "12"), (" 3*4=12. 12-5=7.\n#### 7", "7"), ("so 1,200 apples", "1200"),
    ("#### 3.50", "3.5"), ("no number", None), (" 2+2=4.\n#### ", "4"),
])
def test_extract_answer(text, expected):
    assert extract_answer(text) == expected


def test_process_results_functions():
    assert process_math({"target": "9"}, [" 4+5=9.\n#### 9"]) == {"exact_match": 1.0}
    assert process_math({"target": "9"}, [" 4+5=10.\n#### 10"]) == {"exact_match": 0.0}
    assert math_correct(" 9", "9")
    doc = {"prompt": PROMPT, "tests": TESTS, "entry_point": "add_two"}
    assert process_code(doc, ["    return x + 2"]) == {"pass@1": 1.0}
    assert process_code(doc, ["    return x"]) == {"pass@1": 0.0}
