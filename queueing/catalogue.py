"""The model catalogue: which models exist, where they live, and what their tokens cost."""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path

from pydantic import BaseModel, Field

from queueing.errors import ModelNotFound


class ModelSpec(BaseModel):
    """One servable model."""

    name: str
    path: Path
    context_length: int = Field(gt=0)
    prompt_weight: float = Field(ge=0)
    output_weight: float = Field(gt=0)
    # Prompt tokens one prepared image becomes (0: the model takes no images).
    image_tokens: int = Field(ge=0, default=0)
    band_edges: list[float] = Field(default_factory=lambda: [0.1, 0.5, 2.0])
    # CPU fallback (README, "CPU fallback"): the model new interactive jobs go to while this
    # one's pool has no healthy worker or its interactive jobs wait past ``fallback_wait_s``
    # (unset: the ``fallback.wait_s`` setting). None: no fallback.
    fallback: str | None = None
    fallback_wait_s: float | None = Field(default=None, gt=0)

    @property
    def takes_images(self) -> bool:
        """True for a vision-language model."""
        return self.image_tokens > 0

    @property
    def bands(self) -> int:
        """How many cost bands this model's queues are split into."""
        return len(self.band_edges) + 1


class Catalogue:
    """Models by name, read from a TOML file (the packaged one by default)."""

    def __init__(self, models: dict[str, ModelSpec]) -> None:
        self.models = models

    @classmethod
    def load(cls, models_dir: Path, path: Path | None = None) -> Catalogue:
        """Read the catalogue; relative model paths resolve under ``models_dir``."""
        text = (
            path.read_text()
            if path is not None
            else resources.files("queueing").joinpath("catalogue.toml").read_text()
        )
        models: dict[str, ModelSpec] = {}
        for name, fields in tomllib.loads(text).get("models", {}).items():
            spec = ModelSpec(name=name, **fields)
            if not spec.path.is_absolute():
                spec.path = models_dir / spec.path
            models[name] = spec
        _check_fallbacks(models)
        return cls(models)

    def get(self, name: str) -> ModelSpec:
        """The model called ``name``, or :class:`ModelNotFound`."""
        try:
            return self.models[name]
        except KeyError:
            raise ModelNotFound(f"The model '{name}' does not exist", param="model") from None

    def names(self) -> list[str]:
        """All model names."""
        return sorted(self.models)


def _check_fallbacks(models: dict[str, ModelSpec]) -> None:
    """A fallback names another model of the catalogue; raises ValueError otherwise."""
    for spec in models.values():
        if spec.fallback is None:
            continue
        if spec.fallback == spec.name or spec.fallback not in models:
            raise ValueError(
                f"catalogue: the fallback of {spec.name!r} must be another model of the "
                f"catalogue, not {spec.fallback!r}"
            )
