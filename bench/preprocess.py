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
import subprocess
import tempfile
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description="inferq's image preparation vs plain Pillow")
    p.add_argument("--quick", action="store_true", help="a smaller run of the same shape")
    p.add_argument("--rounds", type=int, help="timed passes over the images")
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


def main() -> None:
    args = _args()
    rounds = args.rounds or (2 if args.quick else 5)
    if args.side:
        _child(args.side, args.images, rounds)
        return
    from bench.preprocess_images import samples

    counts = (3, 1, 8) if args.quick else (8, 3, 24)
    images = samples(*counts)
    naive_python = _naive_python(args.naive_python)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "images.pickle"
        path.write_bytes(pickle.dumps([s.data for s in images]))
        print(
            f"{len(images)} images ({counts[0]} 12 MP JPEG, {counts[1]} 12 MP PNG, {counts[2]}"
            f" small), {sum(len(s.data) for s in images) / 1e6:.1f} MB, {rounds} timed rounds",
            flush=True,
        )
        pinned = shutil.which("taskset") is not None
        runs: dict[str, dict[str, Any]] = {}
        for core in (None, 0) if pinned else (None,):
            for side, python in (("inferq", sys.executable), ("naive", naive_python)):
                label = f"{side}{'' if core is None else '_one_core'}"
                runs[label] = _side(python, side, path, rounds, core)
                got = runs[label]
                print(f"{label}: {got['img_s']:.2f} img/s ({got['pil']}, {got['cpus']} CPUs)")
    if runs["inferq"]["sizes"] != runs["naive"]["sizes"]:
        raise SystemExit("the two sides prepared different sizes")
    result: dict[str, Any] = {
        "bench": "preprocess",
        "inferq_img_s": round(runs["inferq"]["img_s"], 2),
        "naive_img_s": round(runs["naive"]["img_s"], 2),
        "ratio": round(runs["inferq"]["img_s"] / runs["naive"]["img_s"], 2),
        "simd": runs["inferq"]["simd"],
        "naive_simd": runs["naive"]["simd"],
        "cpus": runs["inferq"]["cpus"],
    }
    if pinned:
        result["inferq_one_core_img_s"] = round(runs["inferq_one_core"]["img_s"], 2)
        result["naive_one_core_img_s"] = round(runs["naive_one_core"]["img_s"], 2)
        result["one_core_ratio"] = round(
            runs["inferq_one_core"]["img_s"] / runs["naive_one_core"]["img_s"], 2
        )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
