"""Which PIL this process loaded: pillow-simd or Pillow, and the SIMD it was built with."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import PIL
from prometheus_client import CollectorRegistry, Gauge, Info

# `make setup` writes the compiler flags it built pillow-simd with here (in the venv).
CFLAGS_FILE = "pillow-simd-cflags"


@dataclass(frozen=True)
class PilBuild:
    """The loaded PIL: its distribution, version, and SIMD level ("avx2", "sse4" or "none")."""

    distribution: str
    version: str
    simd: str

    @property
    def pillow_simd(self) -> bool:
        """True when the loaded PIL is pillow-simd's."""
        return self.distribution == "pillow-simd"

    def log_line(self) -> str:
        """One line for the log at start."""
        if self.pillow_simd:
            return f"PIL: pillow-simd {self.version} ({self.simd.upper()})"
        return (
            f"PIL: {self.distribution} {self.version} (no SIMD: pillow-simd is not the PIL loaded)"
        )


def pil_build(prefix: Path | None = None) -> PilBuild:
    """Describe the PIL package this interpreter imported."""
    owner = _owner(Path(PIL.__file__).resolve())
    simd = "none"
    if owner == "pillow-simd":
        flags = _read(Path(prefix or sys.prefix) / CFLAGS_FILE)
        simd = "avx2" if "-mavx2" in flags.split() else "sse4"  # its setup.py always adds -msse4
    return PilBuild(distribution=owner, version=PIL.__version__, simd=simd)


def export(build: PilBuild, registry: CollectorRegistry) -> None:
    """Publish ``build`` as ``inferq_preprocess_pil_info`` and ``inferq_preprocess_pillow_simd``."""
    info = Info("inferq_preprocess_pil", "The PIL the preprocess worker loaded", registry=registry)
    info.info({"distribution": build.distribution, "version": build.version, "simd": build.simd})
    gauge = Gauge(
        "inferq_preprocess_pillow_simd",
        "1 when the preprocess worker runs on pillow-simd, else 0",
        registry=registry,
    )
    gauge.set(1 if build.pillow_simd else 0)


def _owner(init_file: Path) -> str:
    """The installed distribution whose files include ``init_file`` (PIL/__init__.py)."""
    for name in ("pillow-simd", "pillow"):
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        if Path(str(dist.locate_file("PIL/__init__.py"))).resolve() == init_file:
            return name
    return "unknown"


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""
