"""The install block that opens the first cell of every notebook (Colab, Kaggle, a fresh venv).

It is plain Python (no `%pip` magic), identical in every notebook (tests/test_notebook_install_cell.py) and
reads the package source from one variable, `DLLMQ_SOURCE`: the environment variable of that name, else
the default written into the cell. `dllmq assignments build --install-source SPEC` writes a course's
default (its fork, a tag, a wheel URL) into the student edition.

Why the default is empty: the kit is not published (no `dllmq` on PyPI, and the git URL the old cell used
does not exist), and a guessed name could one day install a stranger's package. Where dllmq is missing and
no source is set, the cell stops with a message saying what to set.

What it runs, only where `import dllmq` would fail (or DLLMQ_REINSTALL=1):
`pip install -c PINS "dllmq[eval,gguf] @ SOURCE"`, where PINS holds `torch==<installed>` and
`ipywidgets==<installed>`, so pip adds or upgrades the light dependencies but never replaces the
runtime's own torch or ipywidgets (it fails loudly instead if the kit could not live with them); then
it prints every distribution that changed.
"""
from __future__ import annotations

import json

BEGIN = "# >>> dllmq install"
END = "# <<< dllmq install"
DEFAULT_SOURCE = ""

_TEMPLATE = '''\
# >>> dllmq install: the same in every notebook (dllmq/exercises/install_cell.py); runs only without dllmq.
# DLLMQ_SOURCE (here or in the environment) is what pip installs: a course's fork "git+https://github.com/ORG/REPO",
# a wheel URL or a local path. The runtime's own torch and ipywidgets are pinned, never replaced.
import os, sys, importlib.util
DLLMQ_SOURCE = os.environ.get("DLLMQ_SOURCE", {source})

def _install_dllmq(source):
    import importlib.metadata as md, pathlib, re, subprocess, tempfile
    if not source:
        raise RuntimeError("dllmq is not installed and DLLMQ_SOURCE is empty: set it to your course's fork "
                           "('git+https://github.com/ORG/REPO.git'), a wheel URL or a local clone and rerun this cell "
                           "(in a clone of the kit: pip install -e .)")
    dists = lambda: {{re.sub(r"[-_.]+", "-", d.metadata["Name"] or "").lower(): d.version for d in md.distributions()}}
    before = dists()
    pins = [f"{{name}}=={{before[name]}}" for name in ("torch", "ipywidgets") if name in before]
    with tempfile.NamedTemporaryFile("w", suffix="-pins.txt", delete=False) as f:
        f.write("\\n".join(pins) + "\\n")
    url = pathlib.Path(source).resolve().as_uri() if os.path.exists(source) else source
    requirement = url if url.startswith("dllmq") else f"dllmq[eval,gguf] @ {{url}}"
    try:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-c", f.name, requirement], check=True)
    finally:
        os.unlink(f.name)
    importlib.invalidate_caches()
    changed = sorted(f"{{name}}=={{version}}" for name, version in dists().items() if before.get(name) != version)
    print(f"installed {{requirement}}: {{', '.join(changed) or 'nothing new'}}")
    print(f"kept as they were: {{', '.join(pins) or 'no torch or ipywidgets was installed'}}")

if importlib.util.find_spec("dllmq") is None or os.environ.get("DLLMQ_REINSTALL") == "1":
    _install_dllmq(DLLMQ_SOURCE)
# <<< dllmq install
'''


def render(source: str = DEFAULT_SOURCE) -> str:
    """The install block with `source` as the default of DLLMQ_SOURCE (ends with a newline)."""
    if not isinstance(source, str) or "\n" in source:
        raise ValueError(f"source={source!r}: one pip requirement, URL or path on a single line")
    return _TEMPLATE.format(source=json.dumps(source))


def split(cell_source: str) -> tuple[str, str]:
    """(install block, the rest of the cell) of a first cell; ValueError when the block is not at its top."""
    if not cell_source.startswith(BEGIN):
        raise ValueError(f"the first code cell must start with the install block ({BEGIN!r})")
    end = cell_source.find(END)
    if end < 0:
        raise ValueError(f"the install block has no end line ({END!r})")
    cut = cell_source.index("\n", end) + 1 if "\n" in cell_source[end:] else len(cell_source)
    return cell_source[:cut], cell_source[cut:]


def with_source(cell_source: str, source: str) -> str:
    """`cell_source` with its install block replaced by the canonical one defaulting to `source`."""
    return render(source) + split(cell_source)[1]
