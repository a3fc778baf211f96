"""The shipped tiny dLLM: it loads offline in fp32 and scores what its model card says."""
import json
from pathlib import Path

import torch

import dllmq
from dllmq.eval import category_summary
from dllmq.models.loading import TINY_ASSET_DIR

SCORES = json.loads((TINY_ASSET_DIR / "scores.json").read_text())


def test_assets_are_small_and_complete():
    files = {p.name: p.stat().st_size for p in TINY_ASSET_DIR.iterdir() if p.is_file()}
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "recipe.json",
                 "scores.json", "MODEL_CARD.md"):
        assert name in files, name
    assert sum(files.values()) <= 20 * 2**20
    assert json.loads((TINY_ASSET_DIR / "config.json").read_text())["model_type"] == "llada"


def test_tiny_loads_in_fp32_on_cpu(tiny_trained):
    model, tok = tiny_trained
    assert model.config.model_type == "llada" and model.dtype == torch.float32
    assert tok.mask_token_id == model.config.mask_token_id
    ids = tok("Question: Is 5 larger than 3?\nAnswer:", return_tensors="pt")["input_ids"]
    logits = model(ids).logits
    assert logits.shape == (1, ids.shape[1], model.config.vocab_size) and torch.isfinite(logits).all()


def test_tiny_scores_the_shipped_numbers_on_a_small_limit(tiny_trained):
    """First 24 items of each task: every category within 0.3 of the full-set score of the model card."""
    model, tok = tiny_trained
    table = dllmq.evaluate(model, tok, tasks=["tinybench"], limit=24, progress=False)
    summary = category_summary(table).set_index("category")
    for category, shipped in SCORES["categories"].items():
        assert abs(summary.loc[category, "value"] - shipped["value"]) <= 0.3, (category, summary, shipped)
    assert summary.loc["general", "value"] >= 0.6


def test_card_records_a_reproduction_run(tmp_path):
    """The shipped run compared with itself: zero differences, and the card shows the table."""
    import shutil

    from dllmq.tiny import card

    for name in ("config.json", "recipe.json", "scores.json"):
        shutil.copy(TINY_ASSET_DIR / name, tmp_path / name)
    shipped = {"categories": SCORES["categories"], "tasks": SCORES["tasks"], "eval_seconds": 1.0, "threads": 2}
    run = card.reproduction(str(TINY_ASSET_DIR), shipped, limit=None)
    assert set(run["diff_points"]) == set(SCORES["categories"])
    assert all(abs(d) <= 0.1 for d in run["diff_points"].values()), run
    text = card.write_card(str(tmp_path), {**shipped, "reproductions": [run]})
    assert "## Reproducibility (measured)" in text and f"seed {run['seed']}" in text
    assert "No second training run" in card.write_card(str(tmp_path), shipped)


def test_card_reads_the_decoding_from_the_task_config(monkeypatch):
    """The card's decoding line follows the TinyBench task config instead of repeating its numbers."""
    from dllmq.eval.tasks import TASKS
    from dllmq.tiny import card

    math = TASKS["tinybench_math"].config["generation_kwargs"]
    assert card._decoding("tinybench_math") == (f"{math['max_gen_toks']} tokens, {math['steps']} steps, "
                                                f"blocks of {math['block_length']}")
    code = TASKS["tinybench_code"].config["generation_kwargs"]
    assert card._decoding("tinybench_code") == f"{code['max_gen_toks']} tokens, {code['steps']} steps, one block"
    monkeypatch.setitem(math, "max_gen_toks", 48)
    assert card._decoding("tinybench_math").startswith("48 tokens")


def test_card_keeps_its_hand_written_history(tmp_path):
    """Regenerating the card keeps the `## History` section written by hand, and only once."""
    import shutil

    from dllmq.tiny import card

    for name in ("config.json", "recipe.json"):
        shutil.copy(TINY_ASSET_DIR / name, tmp_path / name)
    scores = {"categories": SCORES["categories"], "tasks": SCORES["tasks"], "eval_seconds": 1.0, "threads": 2}
    first = card.write_card(str(tmp_path), scores)
    assert card.HISTORY not in first
    (tmp_path / card.CARD).write_text(first + "\n## History\n- an earlier run scored 1 point less.\n")
    again = card.write_card(str(tmp_path), scores)
    assert again.count(card.HISTORY) == 1 and "an earlier run scored 1 point less." in again
    assert again.startswith(first.rstrip())


def test_card_command_is_portable():
    """The card's command names no machine path and leaves out snapshot saving; the rest is kept."""
    from dllmq.tiny import card

    recipe = {"command": "python -m dllmq.tiny.train --seed 3 --out /tmp/run_a --checkpoint-every 500 --steps 40"}
    assert card.portable_command(recipe) == "python -m dllmq.tiny.train --seed 3 --out DIR --steps 40"


def test_shipped_scores_were_measured_on_the_shipped_tinybench():
    """Regenerating the test files without re-measuring the model card changes the fingerprint: caught here."""
    from dllmq.tiny import card

    assert SCORES["bench"] == card.bench_fingerprint()


def test_bench_fingerprint_follows_the_files(tmp_path, monkeypatch):
    import shutil

    import dllmq.eval.tasks as tasks
    from dllmq.tiny import card

    for path in tasks.DATA_DIR.glob("*.jsonl"):
        shutil.copy(path, tmp_path / path.name)
    monkeypatch.setattr(tasks, "DATA_DIR", tmp_path)
    same = card.bench_fingerprint()
    assert same == SCORES["bench"]
    (tmp_path / "math.jsonl").write_text((tmp_path / "math.jsonl").read_text().replace("#### 8", "#### 9", 1))
    assert card.bench_fingerprint() != same


def _run(command: str, bench: str, general: float) -> dict:
    cats = {"general": {"value": general, "stderr": 0.03}}
    return {"command": command, "seed": 0, "steps": 10, "device": "cpu", "threads": 1, "wall_minutes": 1.0,
            "bench": bench, "categories": cats, "diff_points": {"general": round(100 * (general - 0.8), 1)}}


def test_card_marks_reproductions_scored_on_another_tinybench(tmp_path):
    """A row measured on an earlier TinyBench stays in the table, marked with a dagger and a footnote."""
    import shutil

    from dllmq.tiny import card

    for name in ("config.json", "recipe.json"):
        shutil.copy(TINY_ASSET_DIR / name, tmp_path / name)
    scores = {"categories": {"general": {"value": 0.8, "stderr": 0.03}}, "tasks": {}, "eval_seconds": 1.0,
              "threads": 1, "bench": "new"}
    old, new = _run("train --seed 1", "old", 0.7), _run("train --seed 0", "new", 0.8)
    text = card.write_card(str(tmp_path), {**scores, "reproductions": [new, old]})
    rows = [line for line in text.splitlines() if line.startswith("| seed")]
    assert len(rows) == 2 and "†" not in rows[0] and "†" in rows[1], rows
    assert "† scored on an earlier version of TinyBench" in text and "fingerprint new" in text
    only_new = card.write_card(str(tmp_path), {**scores, "reproductions": [new]})
    assert "†" not in only_new


def test_re_measuring_keeps_earlier_reproductions():
    """A fresh comparison replaces the row of its own command and keeps the others."""
    from dllmq.tiny import card

    previous = [_run("train --seed 0", "old", 0.7), _run("train --seed 1", "old", 0.9)]
    fresh = [_run("train --seed 0", "new", 0.8)]
    merged = card.merge_reproductions(fresh, previous)
    assert [(r["command"], r["bench"]) for r in merged] == [("train --seed 0", "new"), ("train --seed 1", "old")]
    assert card.merge_reproductions([], previous) == previous
