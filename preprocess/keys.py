"""Content-hash keys: the same image prepared the same way gets the same key."""

from __future__ import annotations

import hashlib

from queueing.settings import PreprocessSettings

# Bump when the preparation's output changes for the same input and settings.
RECIPE_VERSION = 1


def recipe(settings: PreprocessSettings) -> str:
    """The settings that shape a prepared image's bytes, as one stable string."""
    quality = settings.jpeg_quality if settings.output_format == "JPEG" else 0
    return (
        f"v{RECIPE_VERSION};edge={settings.max_edge};fmt={settings.output_format};"
        f"q={quality};gap={settings.reducing_gap:g}"
    )


def prepared_key(data: bytes, settings: PreprocessSettings) -> str:
    """Hex key of ``data`` prepared under ``settings`` (SHA-256 of the recipe and the bytes)."""
    digest = hashlib.sha256(recipe(settings).encode())
    digest.update(b"\0")
    digest.update(data)
    return digest.hexdigest()
