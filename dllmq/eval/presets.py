"""The paper's evaluation settings as data (arXiv 2508.14896, Sec. 4.1, Appendix A, Table A1).

LLaDA (the `llada_dist` settings of the paper's lm-eval fork):
  general tasks  0-shot, Monte-Carlo likelihood with 128 samples (MMLU: 5-shot, 1 sample -- one-token
                 answers make the estimate exact); their generation settings (unused by likelihood tasks)
                 are steps = block = gen length = 1024, cfg 0, temperature 0, low-confidence remasking.
  math / code    Table A1: GSM8K 4-shot 256/256/32, Math 0-shot 256/256/64, HumanEval 0-shot 512/512/32,
                 MBPP 3-shot 512/512/32 (gen length / steps / block length): one token per step,
                 semi-autoregressive blocks.
Dream (`dream_base`): general tasks with the same likelihood settings; generation max_new_tokens 128,
  cfg 1.0 (= off), temperature 0, top_p 0.95, top_k None (the harness passes None: no top-k filter), alg
  "entropy".
Each task names its lm-eval task (the harness's own yaml) and the metric the paper reports.

Fidelity choices the presets fix (docs/fidelity.md): the samplers run in `sampler_mode="official"`
(token-identical to the official loops; the kit's default elsewhere is "guarded", which never commits
[MASK]), and likelihoods use each family's official definition (Dream: continuation + visible EOS).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Optional

FAMILIES = ("llada", "dream")
CATEGORIES = ("general", "math", "code")


@dataclass(frozen=True)
class PaperTask:
    """One benchmark as the paper ran it."""

    name: str  # column name in the paper's tables
    lm_eval_task: str  # lm-eval's task (or group) name
    category: str  # general | math | code
    num_fewshot: int
    kind: str  # "likelihood" (multiple choice) or "generation"
    mc_samples: int = 128
    gen_length: int = 1024
    steps: int = 1024
    block_length: int = 1024
    batch_size: int = 32  # MC samples per forward for likelihood tasks
    metrics: tuple = ("acc,none",)  # lm-eval result keys, first found is the paper's number
    unsafe_code: bool = False  # executes generated code (HumanEval, MBPP)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class DecodingSettings:
    """Sampler settings shared by every task of a family (the paper's fixed choices)."""

    cfg_scale: float = 0.0  # in the family's own convention (Dream: a guidance weight, <= 1 is off)
    temperature: float = 0.0
    remasking: str = "low_confidence"  # LLaDA
    top_p: Optional[float] = None  # Dream
    top_k: Optional[int] = None  # Dream: None = no top-k filter, as the harness passes
    alg: Optional[str] = None  # Dream
    max_new_tokens: Optional[int] = None  # Dream: gen length of every generation task
    sampler_mode: str = "official"  # token-identical to the official samplers (kit default elsewhere: "guarded")
    likelihood: str = "official"  # each family's own likelihood definition (dllmq.likelihood.DEFINITIONS)
    extra: dict = field(default_factory=dict)

    def kit_cfg_scale(self, family: str) -> float:
        """The scale s of the kit's guidance (uncond + (s + 1) * (cond - uncond)): LLaDA's cfg is s itself;
        Dream's harness weight w multiplies (cond - uncond) and is off at w <= 1, so s = w - 1 there."""
        return max(0.0, self.cfg_scale - 1.0) if family == "dream" else self.cfg_scale


_GEN = dict(kind="generation", mc_samples=0, batch_size=1)
LLADA_TASKS = (
    PaperTask("WinoGrande", "winogrande", "general", 0, "likelihood"),
    PaperTask("PIQA", "piqa", "general", 0, "likelihood"),
    PaperTask("ARC-C", "arc_challenge", "general", 0, "likelihood"),
    PaperTask("ARC-E", "arc_easy", "general", 0, "likelihood"),
    PaperTask("Hellaswag", "hellaswag", "general", 0, "likelihood"),
    PaperTask("MMLU", "mmlu", "general", 5, "likelihood", mc_samples=1, batch_size=1),
    PaperTask("GSM8K", "gsm8k", "math", 4, gen_length=256, steps=256, block_length=32,
              metrics=("exact_match,flexible-extract", "exact_match,strict-match"), **_GEN),
    PaperTask("Math", "minerva_math", "math", 0, gen_length=256, steps=256, block_length=64,
              metrics=("exact_match,none", "math_verify,none"), **_GEN),
    PaperTask("HumanEval", "humaneval", "code", 0, gen_length=512, steps=512, block_length=32,
              metrics=("pass@1,create_test", "pass_at_k,create_test", "pass@1,none"), unsafe_code=True,
              **_GEN),
    PaperTask("MBPP", "mbpp", "code", 3, gen_length=512, steps=512, block_length=32,
              metrics=("pass_at_1,none", "pass@1,none"), unsafe_code=True, **_GEN),
)
# Dream-7B was evaluated on these four only (Table 5); 128 new tokens for any generation task
DREAM_TASKS = tuple(
    PaperTask(t.name, t.lm_eval_task, t.category, t.num_fewshot, t.kind, gen_length=128, steps=128,
              block_length=128) for t in LLADA_TASKS if t.name in ("WinoGrande", "PIQA", "ARC-C", "ARC-E"))
DECODING = {
    "llada": DecodingSettings(cfg_scale=0.0, temperature=0.0, remasking="low_confidence"),
    # the Dream class default diffusion_steps is 512; the kit uses steps = max_new_tokens (one token per step)
    "dream": DecodingSettings(cfg_scale=1.0, temperature=0.0, remasking="low_confidence", top_p=0.95, top_k=None,
                              alg="entropy", max_new_tokens=128),
}
TABLE_TASKS = {
    1: ("WinoGrande", "PIQA", "ARC-C", "ARC-E", "Hellaswag", "MMLU"),
    2: ("WinoGrande", "PIQA", "ARC-C", "ARC-E", "MMLU"),
    3: ("GSM8K", "Math", "HumanEval", "MBPP"),
    4: ("GSM8K", "Math", "HumanEval", "MBPP"),
    5: ("WinoGrande", "PIQA", "ARC-C", "ARC-E"),
}


def _check_family(family: str) -> str:
    if family not in FAMILIES:
        raise ValueError(f"family={family!r} has no paper preset; allowed: {FAMILIES}")
    return family


def paper_tasks(family: str = "llada") -> tuple:
    """Every task the paper ran for a model family."""
    return LLADA_TASKS if _check_family(family) == "llada" else DREAM_TASKS


def get_task(name: str, family: str = "llada") -> PaperTask:
    """Look a task up by paper column name ("GSM8K") or lm-eval name ("gsm8k")."""
    for task in paper_tasks(family):
        if name in (task.name, task.lm_eval_task):
            return task
    allowed = [t.lm_eval_task for t in paper_tasks(family)]
    raise ValueError(f"task={name!r} is not a paper task for family {family!r}; allowed: {allowed}")


def table_tasks(n: int, family: Optional[str] = None) -> tuple:
    """The tasks of Table n (family defaults to the table's: Dream for Table 5, else LLaDA)."""
    if n not in TABLE_TASKS:
        raise ValueError(f"table={n!r} is unknown; allowed: {tuple(TABLE_TASKS)}")
    family = family or ("dream" if n == 5 else "llada")
    return tuple(get_task(name, family) for name in TABLE_TASKS[n])


def family_of_name(model: str) -> str:
    """Paper family of a model name or hub id (LLaDA unless the name says Dream)."""
    return "dream" if "dream" in model.lower() else "llada"


def sampler_settings(task: PaperTask, family: str = "llada") -> dict:
    """Keyword arguments for `dllmq.generate` (generation) or `dllmq.loglikelihood` (likelihood)."""
    decoding = DECODING[_check_family(family)]
    if task.kind == "likelihood":
        return {"mc_samples": task.mc_samples, "batch_size": task.batch_size, "cfg_scale": 0.0,
                "definition": decoding.likelihood}
    settings = {"steps": task.steps, "gen_length": task.gen_length, "block_length": task.block_length,
                "temperature": decoding.temperature, "cfg_scale": decoding.kit_cfg_scale(family),
                "sampler_mode": decoding.sampler_mode}
    if family == "llada":
        settings["remasking"] = decoding.remasking
    else:
        settings.update(top_p=decoding.top_p, top_k=decoding.top_k, alg=decoding.alg)
    return settings


def lm_eval_kwargs(task: PaperTask, limit: Optional[float] = None) -> dict:
    """Arguments of `lm_eval.simple_evaluate` for this task (besides the model)."""
    kwargs = {"tasks": [task.lm_eval_task], "num_fewshot": task.num_fewshot, "limit": limit,
              "log_samples": False}
    if task.unsafe_code:
        kwargs["confirm_run_unsafe_code"] = True
    return kwargs


def pick_metric(task_results: dict, task: PaperTask) -> tuple:
    """(metric key, value, stderr) of the paper's metric from one lm-eval results entry."""
    for key in task.metrics:
        if key in task_results:
            name, _, filt = key.partition(",")
            stderr = task_results.get(f"{name}_stderr,{filt}")
            return key, task_results[key], stderr if isinstance(stderr, (int, float)) else None
    numeric = [k for k, v in task_results.items() if isinstance(v, (int, float)) and "stderr" not in k]
    raise KeyError(f"none of {task.metrics} in lm-eval's results for {task.lm_eval_task}; present: {numeric}")


def preset_table(family: str = "llada"):
    """The settings as a DataFrame (what notebook 09 shows next to Table A1)."""
    import pandas as pd

    rows = []
    for t in paper_tasks(family):
        row = {"task": t.name, "lm_eval": t.lm_eval_task, "category": t.category, "shots": t.num_fewshot,
               "scoring": t.kind}
        if t.kind == "likelihood":
            row.update(mc_samples=t.mc_samples)
        else:
            row.update(gen_length=t.gen_length, steps=t.steps, block_length=t.block_length)
        row["metric"] = t.metrics[0]
        rows.append(row)
    return pd.DataFrame(rows)


def lm_for(model, tok, task: PaperTask, family: str = "llada", **overrides):
    """The lm-eval model (`dllmq.eval.lm.DllmqLM`, registered as "dllmq") with this task's settings."""
    from .lm import DllmqLM

    decoding = DECODING[_check_family(family)]
    kwargs = dict(mc_samples=max(1, task.mc_samples), batch_size=task.batch_size,
                  cfg_scale=decoding.kit_cfg_scale(family), temperature=decoding.temperature,
                  remasking=decoding.remasking, alg=decoding.alg or "entropy", sampler_mode=decoding.sampler_mode,
                  likelihood=decoding.likelihood, top_p=decoding.top_p, top_k=decoding.top_k)
    if task.kind == "generation":  # model args win over the task's generation_kwargs in DllmqLM
        kwargs.update(gen_length=task.gen_length, steps=task.steps, block_length=task.block_length)
    kwargs.update(overrides)
    return DllmqLM(model=model, tokenizer=tok, **kwargs)


def run_paper_task(model, tok, task: PaperTask, family: str = "llada", limit: Optional[float] = None,
                   **overrides) -> list:
    """Evaluate one paper task with lm-eval's own task definition; returns store rows.

    Needs the Hugging Face hub (datasets) and, for code tasks, HF_ALLOW_CODE_EVAL=1 (runs generated code).
    Returns [] on non-zero ranks of a data-parallel launch (lm-eval reports on rank 0)."""
    from lm_eval import simple_evaluate

    lm = lm_for(model, tok, task, family, **overrides)
    results = simple_evaluate(model=lm, bootstrap_iters=1000, **lm_eval_kwargs(task, limit))
    if results is None:
        return []
    if task.lm_eval_task not in results["results"]:
        raise KeyError(f"lm-eval returned no results for {task.lm_eval_task}; got {list(results['results'])}")
    entry = results["results"][task.lm_eval_task]
    key, value, stderr = pick_metric(entry, task)
    n = results.get("n-samples", {}).get(task.lm_eval_task, {}).get("effective")
    return [{"task": task.lm_eval_task, "category": task.category, "metric": key, "value": float(value),
             "stderr": stderr, "n": n}]
