"""Which interpreter ``inferq up`` runs the preprocess worker with."""

from __future__ import annotations

import sys
from pathlib import Path

from inferq.preprocess_role import PRE_VENV, preprocess_command, preprocess_python
from queueing.settings import PreprocessSettings, Settings


def test_the_sibling_preprocess_venv_is_preferred(tmp_path: Path) -> None:
    venv = tmp_path / ".venv"
    python = tmp_path / PRE_VENV / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.touch()
    assert preprocess_python(Settings(), prefix=venv) == python


def test_without_it_the_current_interpreter_runs_it(tmp_path: Path) -> None:
    assert preprocess_python(Settings(), prefix=tmp_path / ".venv") == Path(sys.executable)


def test_a_configured_interpreter_wins(tmp_path: Path) -> None:
    settings = Settings(preprocess=PreprocessSettings(python=tmp_path / "py"))
    assert preprocess_command(settings) == [str(tmp_path / "py"), "-m", "inferq"]
