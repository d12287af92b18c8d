"""``python -m api``: serve the API from ``Settings()``; needs ``INFERQ_REDIS__URL``."""

from __future__ import annotations

import sys

from api.server import run_api
from queueing.settings import Settings


def main() -> None:
    """Read the settings from the environment and serve."""
    settings = Settings()
    if not settings.redis.url:
        sys.exit("python -m api needs INFERQ_REDIS__URL (the queue server to use)")
    run_api(settings, settings.redis.url)


if __name__ == "__main__":
    main()
