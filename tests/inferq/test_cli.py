"""``inferq server --cluster N``: a local cluster in the foreground until Ctrl-C."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from redis.cluster import RedisCluster
from typer.testing import CliRunner

from inferq.cli import app as cli
from queueing.cluster import range_is_free
from tests.conftest import free_port_range


def run_server(tmp_path: Path, port: int, *args: str) -> subprocess.Popen[str]:
    """``inferq server ARGS`` with its ports from ``port`` and its data under ``tmp_path``."""
    env = {
        **os.environ,
        "INFERQ_REDIS__EMBEDDED_PORT": str(port),
        "INFERQ_REDIS__DATA_DIR": str(tmp_path),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "inferq", "server", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_server_cluster_prints_its_url_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    base = free_port_range(6, 20100)
    with run_server(tmp_path, base, "--cluster", "3", "--replicas", "1") as proc:
        try:
            assert proc.stdout is not None
            lines = []
            for line in proc.stdout:
                lines.append(line)
                if line.startswith("INFERQ_REDIS__URL="):
                    break
            assert lines[-1].strip() == f"INFERQ_REDIS__URL=redis+cluster://127.0.0.1:{base}"
            client = RedisCluster(host="127.0.0.1", port=base)
            assert client.cluster_info()["cluster_state"] == "ok"
            assert len(client.get_primaries()) == 3
            assert len(client.get_replicas()) == 3
            client.close()
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=20) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
    assert range_is_free("127.0.0.1", base, 6), "every node stopped"
    assert (tmp_path / "cluster" / f"node-{base}" / "nodes.conf").exists()


def test_server_cluster_reports_a_taken_port(tmp_path: Path) -> None:
    base = free_port_range(3, 20400)
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", base + 2))
        blocker.listen()
        proc = run_server(tmp_path, base, "--cluster", "3")
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert f"ports {base}-{base + 2}" in out
    assert "Traceback" not in out


def test_replicas_need_a_cluster() -> None:
    result = CliRunner().invoke(cli, ["server", "--replicas", "1"])
    assert result.exit_code == 2
    assert "--replicas needs --cluster N" in result.output
