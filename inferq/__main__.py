"""``python -m inferq`` runs the CLI (guarded: vLLM's spawned processes re-import this)."""

from inferq.cli import app

if __name__ == "__main__":
    app()
