"""Starting the server: ``run_api`` checks the bind first; ``python -m api`` needs a Redis URL."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from api.app import UnsafeBind
from api.server import run_api
from queueing.settings import ApiSettings, Settings


def test_run_api_refuses_an_open_bind_before_serving() -> None:
    settings = Settings(api=ApiSettings(host="0.0.0.0", port=1), api_keys={})
    with pytest.raises(UnsafeBind, match=r"refusing to listen on '0\.0\.0\.0' without API keys"):
        run_api(settings, "redis://127.0.0.1:1/0")


def test_module_entry_point_needs_a_redis_url() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INFERQ_")}
    done = subprocess.run(
        [sys.executable, "-m", "api"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1
    assert "INFERQ_REDIS__URL" in done.stderr
