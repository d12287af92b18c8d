"""The pipeline bench's options for the open-loop experiments: the catalogue it writes for
inferq's cost bands, and the combinations of options it refuses."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from bench.pipeline import _args, _catalogue_env
from queueing.catalogue import Catalogue
from queueing.settings import Settings


def test_the_written_catalogue_keeps_the_model_and_changes_only_its_bands(tmp_path: Path) -> None:
    settings = Settings()
    before = Catalogue.load(settings.models_dir, settings.catalogue).get(settings.default_model)
    env = _catalogue_env([0.04, 0.1, 0.5], tmp_path)
    after = Catalogue.load(Path("/nowhere"), Path(env["INFERQ_CATALOGUE"])).get(before.name)
    assert after.band_edges == [0.04, 0.1, 0.5]
    assert after.model_dump(exclude={"band_edges"}) == before.model_dump(exclude={"band_edges"})


@pytest.mark.parametrize(
    "argv",
    [
        ["--unit-budget", "16", "1"],
        ["--capacity", "90"],
        ["--band-edges", "0.04", "0.1"],
    ],
)
def test_open_loop_options_need_the_open_loop_only_run(
    monkeypatch: pytest.MonkeyPatch, argv: list[str]
) -> None:
    monkeypatch.setattr(sys, "argv", ["pipeline.py", *argv])
    with pytest.raises(SystemExit):
        _args()


def test_several_budgets_make_one_inferq_side_each(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["pipeline.py", "--open-loop-only", "--unit-budget", "2", "1"])
    assert _args().unit_budget == [2.0, 1.0]
