"""How ``inferq up`` runs the preprocess worker: with pillow-simd's interpreter if it can."""

from __future__ import annotations

import sys
from pathlib import Path

from queueing.settings import Settings

PRE_VENV = ".venv-preprocess"


def preprocess_python(settings: Settings, prefix: Path | None = None) -> Path:
    """``preprocess.python``, else ``.venv-preprocess/bin/python`` beside this interpreter's
    venv (``make setup`` builds it with pillow-simd), else this interpreter."""
    if settings.preprocess.python is not None:
        return settings.preprocess.python
    sibling = Path(prefix or sys.prefix).parent / PRE_VENV / "bin" / "python"
    return sibling if sibling.exists() else Path(sys.executable)


def preprocess_command(settings: Settings) -> list[str]:
    """The program that runs ``inferq preprocess`` (arguments follow)."""
    return [str(preprocess_python(settings)), "-m", "inferq"]
