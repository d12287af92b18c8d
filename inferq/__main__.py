"""``python -m inferq`` runs the CLI."""

from inferq.cli import app

app()
