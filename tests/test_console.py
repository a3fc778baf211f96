"""A quiet, readable console: `dllmq demo` prints its steps and tables and one progress bar for the grid;
the libraries' own bars and chatter appear only with --verbose."""
import os
import subprocess
import sys

import pytest

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "MPLBACKEND": "Agg"}
ENV.pop("TQDM_DISABLE", None)


def _run(args, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "dllmq", *args], cwd=tmp_path, env=ENV, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [line.strip() for line in proc.stderr.replace("\r", "\n").splitlines() if line.strip()]
    return proc.stdout, lines


@pytest.mark.slow
def test_demo_shows_one_progress_bar_and_its_tables(tmp_path):
    out, err = _run(["demo", "--limit", "1", "--out", str(tmp_path / "d")], tmp_path)
    assert "== 1. denoising" in out and "== 3. every method" in out and "DuQuant" in out
    assert err and all(line.startswith("demo:") for line in err), err[:10]  # the grid's bar, nothing else
    verbose_out, verbose_err = _run(["demo", "--no-grid", "--limit", "1", "--verbose", "--out",
                                     str(tmp_path / "v")], tmp_path)
    assert any("Loading weights" in line for line in verbose_err)  # what the quiet mode hides


def test_verbose_is_taken_by_dllmq_and_never_reaches_lm_eval(monkeypatch):
    """`dllmq eval ... --verbose` keeps the libraries' output; lm-eval's parser would refuse the flag."""
    import importlib

    from dllmq import cli

    seen = []
    module = importlib.import_module(cli.COMMANDS["eval"][0])
    monkeypatch.setattr(module, "main", lambda argv: seen.append(list(argv)) or 0)
    monkeypatch.setenv("TQDM_DISABLE", "0")
    assert cli.main(["eval", "--tasks", "tinybench_general", "--verbose"]) == 0
    assert os.environ["TQDM_DISABLE"] == "0"  # verbose: the progress bars stay on
    assert seen == [["--tasks", "tinybench_general"]]
