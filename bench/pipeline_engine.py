"""The engine settings every side of the pipeline bench shares, and the offline side.

``python bench/pipeline_engine.py MODEL_DIR MAX_MODEL_LEN REQUESTS.json RESULT.json`` runs
vLLM's offline ``LLM.generate`` over the requests (after a warm-up) and writes its figures.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

if __name__ == "__main__":
    # bench/ heads sys.path when run as a script and would shadow the stdlib ``queue``.
    _HERE = Path(__file__).resolve().parent
    sys.path[:] = [str(_HERE.parent), *(p for p in sys.path if Path(p or ".").resolve() != _HERE)]

import json
import time
from typing import Any

from bench.workload import load
from workers.engines.vllm import VllmConfig


def engine_kwargs(config: VllmConfig) -> dict[str, Any]:
    """vLLM engine arguments of the worker's adapter, for the other sides to copy."""
    return {
        "model": str(config.model),
        "max_model_len": config.max_model_len,
        "enforce_eager": config.enforce_eager,
        "kv_cache_memory_bytes": config.kv_cache_bytes,
        "max_num_seqs": config.max_num_seqs,
        "dtype": config.dtype,
        "scheduling_policy": "priority",
    }


def serve_flags(config: VllmConfig) -> list[str]:
    """The same settings as ``vllm.entrypoints.openai.api_server`` flags."""
    flags = []
    for name, value in engine_kwargs(config).items():
        flag = "--" + name.replace("_", "-")
        if value is True:
            flags.append(flag)
        elif value is not False:
            flags += [flag, str(value)]
    return flags


def offline(config: VllmConfig, requests_path: Path, repeats: int) -> dict[str, Any]:
    """Output tokens per second of ``LLM.generate`` over the requests, ``repeats`` times:
    the median, and every run's figure."""
    from vllm import LLM, SamplingParams

    requests = load(requests_path)
    llm = LLM(**engine_kwargs(config))

    def params(max_tokens: int) -> Any:
        return SamplingParams(max_tokens=max_tokens, temperature=0.0, ignore_eos=True)

    warm = requests[:8]
    llm.generate([r.prompt for r in warm], [params(r.max_tokens) for r in warm], use_tqdm=False)
    runs = []
    for _ in range(repeats):
        started = time.perf_counter()
        outputs = llm.generate(
            [r.prompt for r in requests], [params(r.max_tokens) for r in requests], use_tqdm=False
        )
        elapsed = time.perf_counter() - started
        runs.append(sum(len(o.outputs[0].token_ids) for o in outputs) / elapsed)
    return {"tok_s": statistics.median(runs), "runs": runs}


if __name__ == "__main__":
    model_dir, max_len, requests_file, result_file, repeats = sys.argv[1:6]
    config = VllmConfig(model=Path(model_dir), max_model_len=int(max_len))
    result = offline(config, Path(requests_file), int(repeats))
    Path(result_file).write_text(json.dumps(result))
