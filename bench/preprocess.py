"""Preprocess bench: images/s of inferq's image path vs a naive plain-Pillow baseline.

Run as ``.venv-preprocess/bin/python bench/preprocess.py [--quick]``. The same generated
images (photo-like 12 MP JPEGs and PNGs, and small ones) go through each side, each side in
its own interpreter: inferq's in this one (pillow-simd in .venv-preprocess), the naive one in
``--naive-python`` (default .venv's, which has plain Pillow). Then both again pinned to one
core with taskset. The last line printed is JSON.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__":
    # bench/ heads sys.path when run as a script: it would shadow the stdlib ``queue`` and
    # the ``preprocess`` package with this very file.
    _HERE = Path(__file__).resolve().parent
    sys.path[:] = [str(_HERE.parent), *(p for p in sys.path if Path(p or ".").resolve() != _HERE)]

import argparse
import json
import os
import pickle
import shutil
import statistics
import subprocess
import tempfile
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description="inferq's image preparation vs plain Pillow")
    p.add_argument("--quick", action="store_true", help="a smaller run of the same shape")
    p.add_argument(
        "--rounds", type=int, help="timed passes over the images per run (sent as one stream)"
    )
    p.add_argument("--trials", type=int, help="runs of each side (the median is reported)")
    p.add_argument("--naive-python", type=Path, help="interpreter of the naive side")
    p.add_argument("--side", choices=["inferq", "naive"], help=argparse.SUPPRESS)
    p.add_argument("--images", type=Path, help=argparse.SUPPRESS)
    return p.parse_args()


def _naive_python(given: Path | None) -> str:
    if given is not None:
        return str(given)
    plain = ROOT / ".venv" / "bin" / "python"
    return str(plain) if plain.exists() else sys.executable


def _side(python: str, side: str, images: Path, rounds: int, core: int | None) -> dict[str, Any]:
    """Run one side in ``python`` (pinned to ``core`` if given); its figures."""
    command = [python, str(Path(__file__).resolve()), "--side", side, "--images", str(images)]
    command += ["--rounds", str(rounds)]
    if core is not None:
        command = ["taskset", "-c", str(core), *command]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(command, env=env, check=True, stdout=subprocess.PIPE, text=True)
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def _child(side: str, images: Path, rounds: int) -> None:
    from bench.preprocess_sides import run
    from preprocess.cpu import usable_cpus
    from preprocess.pil_build import pil_build

    data: list[bytes] = pickle.loads(images.read_bytes())
    figures = run(side, data, rounds)
    build = pil_build()
    print(
        json.dumps(
            {**figures, "pil": build.log_line(), "simd": build.pillow_simd, "cpus": usable_cpus()}
        )
    )


def _measure(
    sides: list[tuple[str, str]], path: Path, rounds: int, trials: int, pinned: bool
) -> dict[str, list[dict[str, Any]]]:
    """Every side, unpinned and (with taskset) on one core, ``trials`` times, interleaved so
    that load from other processes on the machine falls on both sides alike."""
    runs: dict[str, list[dict[str, Any]]] = {}
    for trial in range(trials):
        for core in (None, 0) if pinned else (None,):
            for side, python in sides:
                label = f"{side}{'' if core is None else '_one_core'}"
                got = _side(python, side, path, rounds, core)
                runs.setdefault(label, []).append(got)
                print(
                    f"[{trial}] {label}: {got['img_s']:.2f} img/s, {got['img_cpu_s']:.2f} img/CPU-s"
                    f" ({got['pil']}, {got['cpus']} CPUs)"
                )
    return runs


def _median(runs: list[dict[str, Any]], figure: str = "img_s") -> float:
    return round(float(statistics.median(run[figure] for run in runs)), 2)


def main() -> None:
    args = _args()
    rounds = args.rounds or (2 if args.quick else 4)
    if args.side:
        _child(args.side, args.images, rounds)
        return
    from bench.preprocess_images import samples

    counts = (3, 1, 8) if args.quick else (8, 2, 16)
    trials = args.trials or (3 if args.quick else 5)
    images = samples(*counts)
    sides = [("inferq", sys.executable), ("naive", _naive_python(args.naive_python))]
    pinned = shutil.which("taskset") is not None
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "images.pickle"
        path.write_bytes(pickle.dumps([s.data for s in images]))
        print(
            f"{len(images)} images ({counts[0]} 12 MP JPEG, {counts[1]} 12 MP PNG, {counts[2]}"
            f" small), {sum(len(s.data) for s in images) / 1e6:.1f} MB, {rounds} timed passes"
            f" per run sent as one stream, median of {trials} runs",
            flush=True,
        )
        runs = _measure(sides, path, rounds, trials, pinned)
    if runs["inferq"][0]["sizes"] != runs["naive"][0]["sizes"]:
        raise SystemExit("the two sides prepared different sizes")
    inferq, naive = _median(runs["inferq"]), _median(runs["naive"])
    result: dict[str, Any] = {
        "bench": "preprocess",
        "inferq_img_s": inferq,
        "naive_img_s": naive,
        "ratio": round(inferq / naive, 2),
        "inferq_img_cpu_s": _median(runs["inferq"], "img_cpu_s"),
        "naive_img_cpu_s": _median(runs["naive"], "img_cpu_s"),
        "cpu_ratio": round(
            _median(runs["inferq"], "img_cpu_s") / _median(runs["naive"], "img_cpu_s"), 2
        ),
        "simd": runs["inferq"][0]["simd"],
        "naive_simd": runs["naive"][0]["simd"],
        "cpus": runs["inferq"][0]["cpus"],
    }
    if pinned:
        one_inferq, one_naive = _median(runs["inferq_one_core"]), _median(runs["naive_one_core"])
        result["inferq_one_core_img_s"] = one_inferq
        result["naive_one_core_img_s"] = one_naive
        result["one_core_ratio"] = round(one_inferq / one_naive, 2)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
