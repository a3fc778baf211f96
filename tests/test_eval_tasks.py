"""Offline task files, their validation, `dllmq.evaluate` and the `dllmq eval` command."""
import gzip
import json

import pandas as pd
import pytest

import dllmq
from dllmq.eval import category_summary, results_table
from dllmq.eval.cli import build_argv
from dllmq.eval.cli import main as cli_main
from dllmq.eval.scoring import process_humaneval
from dllmq.eval.tasks import (GROUPS, TASKS, TaskConfigError, expand, humaneval_path, validate_task_dir,
                              validate_task_file, write_task_dir)


def test_written_task_files_are_valid_and_absolute(tmp_path):
    out = write_task_dir(str(tmp_path))
    names = validate_task_dir(out)
    assert set(TASKS) | set(GROUPS) == set(names)
    text = (out / "tinybench_math.yaml").read_text()
    assert str(tmp_path) not in text and "/dllmq/eval/data/math.jsonl" in text
    assert "process_results: !function tinybench_utils.process_math" in text


def test_malformed_task_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("task: [unclosed\n")
    with pytest.raises(TaskConfigError, match="not valid YAML"):
        validate_task_file(bad)
    bad.write_text("task: t\ndataset_path: json\n")
    with pytest.raises(TaskConfigError, match="required keys"):
        validate_task_file(bad)
    bad.write_text("- a list\n")
    with pytest.raises(TaskConfigError, match="mapping"):
        validate_task_file(bad)


def test_missing_data_file_is_a_clear_error(tmp_path):
    task = tmp_path / "t.yaml"
    task.write_text("task: t\noutput_type: generate_until\ndoc_to_text: '{{q}}'\ndataset_path: json\n"
                    f"dataset_kwargs:\n  data_files:\n    test: {tmp_path / 'nope.jsonl'}\n")
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        validate_task_file(task)
    with pytest.raises(FileNotFoundError, match="dllmq.tiny.bench"):
        write_task_dir(str(tmp_path / "out"), data_dir=tmp_path / "empty", names=["tinybench_general"])


def test_evaluate_rejects_bad_tasks_and_include_paths(tiny_llada, tmp_path):
    model, tok = tiny_llada
    with pytest.raises(ValueError, match="unknown"):
        dllmq.evaluate(model, tok, tasks=["tinybench_poetry"], limit=1)
    with pytest.raises(ValueError, match="limit"):
        dllmq.evaluate(model, tok, limit=-3)
    (tmp_path / "broken.yaml").write_text("task: x\n")
    with pytest.raises(TaskConfigError):
        dllmq.evaluate(model, tok, tasks=["tinybench_general"], include_path=str(tmp_path), limit=1)


def test_evaluate_returns_a_tidy_table(tiny_llada):
    model, tok = tiny_llada
    table = dllmq.evaluate(model, tok, tasks=["tinybench_general", "tinybench_code"], limit=2, mc_samples=2,
                           batch_size=8, progress=False)
    assert list(table.columns) == ["task", "category", "metric", "value", "stderr"]
    assert set(zip(table.task, table.category, table.metric)) == {
        ("tinybench_general", "general", "acc"), ("tinybench_code", "code", "pass@1")}
    assert table.value.between(0, 1).all() and (table.stderr >= 0).all()
    summary = category_summary(table)
    assert list(summary.category) == ["general", "code"]


def test_results_table_and_category_summary_from_a_results_dict():
    results = {"results": {
        "tinybench": {"alias": "tinybench"},
        "tinybench_general": {"alias": "g", "acc,none": 0.9, "acc_stderr,none": 0.03, "sample_len": 150},
        "tinybench_math": {"exact_match,none": 0.6, "exact_match_stderr,none": 0.04},
        "tinybench_math_fewshot": {"exact_match,none": 0.8, "exact_match_stderr,none": 0.03},
    }}
    table = results_table(results)
    assert len(table) == 3 and set(table.category) == {"general", "math"}
    summary = category_summary(table).set_index("category")
    assert summary.loc["math", "value"] == pytest.approx(0.7)
    assert summary.loc["math", "stderr"] == pytest.approx((0.04 ** 2 + 0.03 ** 2) ** 0.5 / 2)
    assert isinstance(summary, pd.DataFrame)


def test_groups_expand():
    assert expand("tinybench") == ["tinybench_general", "tinybench_math", "tinybench_code"]
    assert expand(["tinybench_all", "gsm8k"])[-1] == "gsm8k"


def test_humaneval_offline_grades_in_the_sandbox():
    with gzip.open(humaneval_path(), "rt") as f:
        problem = json.loads(f.readline())
    assert process_humaneval(problem, [problem["canonical_solution"]]) == {"pass@1": 1.0}
    assert process_humaneval(problem, ["    return None\n"]) == {"pass@1": 0.0}


def test_cli_argv_and_help(tmp_path, capsys):
    argv = build_argv(["--tasks", "tinybench", "--limit", "2"])
    assert argv[0] == "run" and argv[argv.index("--model") + 1] == "dllmq"
    assert (argv and __import__("pathlib").Path(argv[-1], "tinybench.yaml").exists())
    user = tmp_path / "mine"
    user.mkdir()
    (user / "bad.yaml").write_text("task: [\n")
    with pytest.raises(TaskConfigError):
        build_argv(["--tasks", "x", "--include_path", str(user)])
    assert cli_main(["--help"]) == 0
    assert "tinybench_math_fewshot" in capsys.readouterr().out


def test_humaneval_offline_runs_through_lm_eval(tiny_llada):
    model, tok = tiny_llada
    table = dllmq.evaluate(model, tok, tasks=["humaneval_offline"], limit=1, gen_length=16, steps=16,
                           progress=False, log_samples=True)
    assert table.loc[0, "task"] == "humaneval_offline" and table.loc[0, "category"] == "code"
    assert table.loc[0, "value"] == 0.0  # a random model fails HumanEval/0
    assert isinstance(table.attrs["samples"]["humaneval_offline"][0]["resps"][0][0], str)
