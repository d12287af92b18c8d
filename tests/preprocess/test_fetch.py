"""The image fetcher against a real HTTP server on loopback: what it fetches, what it refuses."""

from __future__ import annotations

import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from preprocess.fetch import checked_address, fetch_image
from queueing.errors import InvalidImage
from queueing.settings import ImageFetchSettings

IMAGE = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8


class Handler(BaseHTTPRequestHandler):
    """Routes: /img, /big (Content-Length), /chunked (no length), /slow, /missing,
    /to/<path> (a redirect to <path>, which may be a full URL), /loop."""

    seen: list[tuple[str, str]]  # (path, Host header) of every request

    def do_GET(self) -> None:
        self.seen.append((self.path, self.headers.get("Host", "")))
        if self.path == "/img":
            self._send(IMAGE)
        elif self.path == "/big":
            self._send(b"x" * 5000)
        elif self.path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for _ in range(10):
                self.wfile.write(b"3e8\r\n" + b"x" * 1000 + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
        elif self.path == "/slow":
            time.sleep(1.5)
            self._send(IMAGE)
        elif self.path.startswith("/to/"):
            target = self.path[len("/to/") :]
            self._redirect(target if "://" in target else f"/{target}")
        elif self.path == "/loop":
            self._redirect("/loop")
        else:
            self.send_error(404)

    def _send(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _redirect(self, location: str) -> None:
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


@pytest.fixture
def server() -> Iterator[tuple[int, list[tuple[str, str]]]]:
    """A real HTTP server on 127.0.0.1; yields its port and the requests it saw."""
    seen: list[tuple[str, str]] = []
    handler = type("Recording", (Handler,), {"seen": seen})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.block_on_close = False  # /slow's handler may still sleep
    thread = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield httpd.server_address[1], seen
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def allowed(**more: Any) -> ImageFetchSettings:
    """Fetching on, loopback's names allowed, and loopback as a private network allowed."""
    fields: dict[str, Any] = {
        "enabled": True,
        "allow_hosts": ["127.0.0.1", "localhost"],
        "allow_addresses": ["127.0.0.0/8", "::1/128"],
        "max_bytes": 4096,
        "timeout_s": 5.0,
    }
    return ImageFetchSettings.model_validate(fields | more)


def test_an_allowed_url_is_fetched(server: tuple[int, list[tuple[str, str]]]) -> None:
    port, seen = server
    assert fetch_image(f"http://127.0.0.1:{port}/img", allowed()) == IMAGE
    assert fetch_image(f"http://localhost:{port}/img", allowed()) == IMAGE
    # By name, the connection went to the checked address, and the Host header kept the name.
    assert seen == [("/img", f"127.0.0.1:{port}"), ("/img", f"localhost:{port}")]


def test_fetching_is_off_by_default(server: tuple[int, list[tuple[str, str]]]) -> None:
    port, seen = server
    with pytest.raises(InvalidImage, match="fetching image URLs is turned off"):
        fetch_image(f"http://127.0.0.1:{port}/img", ImageFetchSettings())
    assert not seen


@pytest.mark.parametrize(
    ("hosts", "reason"),
    [
        (["example.com"], "'127.0.0.1' is not on the image fetch allowlist"),
        (["*.127.0.0.1"], "is not on the image fetch allowlist"),
    ],
)
def test_hosts_off_the_list_are_refused(
    server: tuple[int, list[tuple[str, str]]], hosts: list[str], reason: str
) -> None:
    port, seen = server
    with pytest.raises(InvalidImage, match=reason):
        fetch_image(f"http://127.0.0.1:{port}/img", allowed(allow_hosts=hosts))
    assert not seen


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("http://127.0.0.1:{port}/img", "loopback"),
        ("http://localhost:{port}/img", "loopback"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://10.1.2.3/img", "private"),
        ("http://[::ffff:127.0.0.1]:{port}/img", "loopback"),
        ("http://0.0.0.0:{port}/img", "unspecified"),
    ],
)
def test_private_addresses_are_refused_unless_allowed(
    server: tuple[int, list[tuple[str, str]]], url: str, kind: str
) -> None:
    port, seen = server
    hosts = ["127.0.0.1", "localhost", "169.254.169.254", "10.1.2.3", "::ffff:127.0.0.1", "0.0.0.0"]
    settings = allowed(allow_hosts=hosts, allow_addresses=[])
    with pytest.raises(InvalidImage, match=f"a {kind} address: not fetched"):
        fetch_image(url.format(port=port), settings)
    assert not seen


def test_redirects_are_followed_and_each_hop_is_checked(
    server: tuple[int, list[tuple[str, str]]],
) -> None:
    port, seen = server
    base = f"http://127.0.0.1:{port}"
    assert fetch_image(f"{base}/to/to/img", allowed()) == IMAGE
    assert [path for path, _ in seen] == ["/to/to/img", "/to/img", "/img"]
    with pytest.raises(InvalidImage, match="more than 1 redirects"):
        fetch_image(f"{base}/to/to/img", allowed(max_redirects=1))
    with pytest.raises(InvalidImage, match="more than 3 redirects"):
        fetch_image(f"{base}/loop", allowed())
    seen.clear()
    # To a host off the list, and to a private address of a listed host: refused unfetched.
    with pytest.raises(InvalidImage, match=r"'127\.0\.0\.2' is not on the image fetch allowlist"):
        fetch_image(f"{base}/to/http://127.0.0.2:{port}/img", allowed())
    private = allowed(allow_hosts=["127.0.0.1", "10.9.9.9"])
    with pytest.raises(InvalidImage, match=r"resolves to 10\.9\.9\.9, a private address"):
        fetch_image(f"{base}/to/http://10.9.9.9/img", private)
    assert [path for path, _ in seen] == [
        f"/to/http://127.0.0.2:{port}/img",
        "/to/http://10.9.9.9/img",
    ]


@pytest.mark.parametrize(("path", "reason"), [("/big", "5000 bytes, over"), ("/chunked", "over")])
def test_over_size_bodies_are_refused(
    server: tuple[int, list[tuple[str, str]]], path: str, reason: str
) -> None:
    port, _ = server
    with pytest.raises(InvalidImage, match=f"{reason} the limit of 4096"):
        fetch_image(f"http://127.0.0.1:{port}{path}", allowed())
    assert len(fetch_image(f"http://127.0.0.1:{port}{path}", allowed(max_bytes=10_000))) > 4096


def test_slow_servers_time_out(server: tuple[int, list[tuple[str, str]]]) -> None:
    port, _ = server
    start = time.monotonic()
    with pytest.raises(InvalidImage, match=r"took longer than 0\.5 s"):
        fetch_image(f"http://127.0.0.1:{port}/slow", allowed(timeout_s=0.5))
    assert time.monotonic() - start < 1.4


def test_errors_and_other_schemes(server: tuple[int, list[tuple[str, str]]]) -> None:
    port, _ = server
    with pytest.raises(InvalidImage, match="answered HTTP 404"):
        fetch_image(f"http://127.0.0.1:{port}/missing", allowed())
    with pytest.raises(InvalidImage, match="must be http\\(s\\), not 'ftp'"):
        fetch_image(f"ftp://127.0.0.1:{port}/img", allowed())
    with pytest.raises(InvalidImage, match="does not resolve"):
        fetch_image("http://no-such-host.invalid/img", allowed(allow_hosts=["*.invalid"]))
    free = httpx.URL(f"http://127.0.0.1:{port}/img")
    assert str(checked_address(free, allowed())) == "127.0.0.1"


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for the name ``localhost`` (openssl), and its key."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    request = ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj"]
    names = ["/CN=localhost", "-addext", "subjectAltName=DNS:localhost"]
    subprocess.run(
        ["openssl", *request, *names, "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    return cert, key


def test_https_connects_to_the_checked_address_and_verifies_the_name(
    certificate: tuple[Path, Path],
) -> None:
    cert, key = certificate
    names: list[str | None] = []
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    context.sni_callback = lambda _sock, name, _ctx: names.append(name)  # type: ignore[assignment,func-returns-value]
    seen: list[tuple[str, str]] = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), type("Recording", (Handler,), {"seen": seen}))
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        port = httpd.server_address[1]
        settings = allowed(ca_file=cert)
        assert fetch_image(f"https://localhost:{port}/img", settings) == IMAGE
        # The pinned connection named the host for TLS: its certificate was checked against it.
        assert names == ["localhost"] and seen == [("/img", f"localhost:{port}")]
        with pytest.raises(InvalidImage, match=r"failed: .*CERTIFICATE_VERIFY_FAILED"):
            fetch_image(f"https://127.0.0.1:{port}/img", settings)  # the cert names localhost
        with pytest.raises(InvalidImage, match="CERTIFICATE_VERIFY_FAILED"):
            fetch_image(f"https://localhost:{port}/img", allowed())  # not a CA the system trusts
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)
