"""Which PIL is loaded, in the log line and the metrics."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

import PIL
from prometheus_client import CollectorRegistry

from preprocess.pil_build import CFLAGS_FILE, PilBuild, export, pil_build


def installed(name: str) -> bool:
    try:
        metadata.distribution(name)
    except metadata.PackageNotFoundError:
        return False
    return True


def test_the_loaded_pil_is_named(tmp_path: Path) -> None:
    (tmp_path / CFLAGS_FILE).write_text("-mavx2\n")
    build = pil_build(prefix=tmp_path)
    assert build.version == PIL.__version__
    if installed("pillow-simd") and not installed("pillow"):
        assert build.pillow_simd and build.simd == "avx2"
        assert build.log_line() == f"PIL: pillow-simd {PIL.__version__} (AVX2)"
    else:
        assert build == PilBuild("pillow", PIL.__version__, "none")
        assert "no SIMD" in build.log_line()


def test_pillow_simd_without_the_build_flags_file_is_sse4(tmp_path: Path) -> None:
    assert pil_build(prefix=tmp_path).simd == ("sse4" if installed("pillow-simd") else "none")


def test_export_sets_the_gauge_and_the_info() -> None:
    registry = CollectorRegistry()
    export(PilBuild("pillow-simd", "12.1.1.post0", "avx2"), registry)
    assert registry.get_sample_value("inferq_preprocess_pillow_simd") == 1
    labels = {"distribution": "pillow-simd", "version": "12.1.1.post0", "simd": "avx2"}
    assert registry.get_sample_value("inferq_preprocess_pil_info", labels) == 1
    plain = CollectorRegistry()
    export(PilBuild("pillow", "13.0.0", "none"), plain)
    assert plain.get_sample_value("inferq_preprocess_pillow_simd") == 0
