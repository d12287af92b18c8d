"""Fetching an http(s) image URL without letting a user reach what the server can reach.

Server-side request forgery rules: only allowlisted hosts; every address a host resolves to
must be public (or inside an allowlisted network); the connection goes to the address that
was checked (the URL is rewritten to it, with the name kept in the Host header and for TLS),
so a second DNS answer cannot point it elsewhere; redirects are followed here, one hop at a
time, each checked like the first; the size is capped while reading and the whole fetch is
timed. No proxy from the environment is used.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
import time
from typing import Any
from urllib.parse import urljoin

import httpx

from queueing.errors import InvalidImage
from queueing.settings import ImageFetchSettings

REDIRECTS = {301, 302, 303, 307, 308}
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def fetch_image(url: str, settings: ImageFetchSettings) -> bytes:
    """The bytes at ``url``; :class:`InvalidImage` saying why when the fetch is refused or fails."""
    if not settings.enabled:
        raise InvalidImage("fetching image URLs is turned off: send a data: URL or a file id")
    deadline = time.monotonic() + settings.timeout_s
    timeout = httpx.Timeout(settings.timeout_s)
    verify = ssl.create_default_context(cafile=settings.ca_file) if settings.ca_file else True
    with httpx.Client(
        timeout=timeout, verify=verify, follow_redirects=False, trust_env=False
    ) as client:
        for _ in range(settings.max_redirects + 1):
            try:
                target = httpx.URL(url)
            except httpx.InvalidURL as exc:
                raise InvalidImage(f"{url!r} is not a valid URL: {exc}") from None
            address = checked_address(target, settings)
            try:
                if time.monotonic() > deadline:
                    raise httpx.ConnectTimeout("the whole fetch's time is up")
                with client.stream("GET", pinned(target, address), **_as_host(target)) as reply:
                    if reply.status_code in REDIRECTS and "location" in reply.headers:
                        url = urljoin(str(target), reply.headers["location"])
                        continue
                    if reply.status_code != 200:
                        raise InvalidImage(f"fetching {target} answered HTTP {reply.status_code}")
                    return _body(reply, target, settings, deadline)
            except httpx.TimeoutException:
                raise InvalidImage(
                    f"fetching {target} took longer than {settings.timeout_s} s"
                ) from None
            except httpx.HTTPError as exc:
                raise InvalidImage(f"fetching {target} failed: {exc}") from None
    raise InvalidImage(f"fetching the image took more than {settings.max_redirects} redirects")


def checked_address(url: httpx.URL, settings: ImageFetchSettings) -> Address:
    """The address to connect to for ``url``, once its scheme, host and addresses pass."""
    if url.scheme not in ("http", "https"):
        raise InvalidImage(f"image URLs must be http(s), not {url.scheme or 'relative'!r}")
    if not settings.allows_host(url.host):
        raise InvalidImage(f"the host {url.host!r} is not on the image fetch allowlist")
    addresses = _resolve(url)
    for address in addresses:
        if not _allowed(address, settings):
            raise InvalidImage(
                f"the host {url.host!r} resolves to {address}, a {_kind(address)} address: "
                "not fetched"
            )
    return addresses[0]


def pinned(url: httpx.URL, address: Address) -> httpx.URL:
    """``url`` with its host replaced by the checked ``address``."""
    return url.copy_with(host=str(address))


def _as_host(url: httpx.URL) -> dict[str, Any]:
    """What keeps a pinned request addressed to the named host: Host header and TLS name."""
    host = url.netloc.decode("ascii").rpartition("@")[2]
    extensions = {"sni_hostname": url.host} if url.scheme == "https" else {}
    return {"headers": {"Host": host}, "extensions": extensions}


def _resolve(url: httpx.URL) -> list[Address]:
    try:
        return [ipaddress.ip_address(url.host)]
    except ValueError:
        pass
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(url.host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise InvalidImage(f"the host {url.host!r} does not resolve: {exc}") from None
    found = [ipaddress.ip_address(info[4][0]) for info in infos]
    return list(dict.fromkeys(found))


def _allowed(address: Address, settings: ImageFetchSettings) -> bool:
    if any(address in network for network in settings.allow_addresses):
        return True
    return _kind(address) == "public"


def _kind(address: Address) -> str:
    """What kind of address ``address`` is (an IPv4-mapped one: its IPv4 address's kind):
    public, or why it is not."""
    address = getattr(address, "ipv4_mapped", None) or address
    for kind in ("loopback", "link_local", "multicast", "unspecified", "reserved", "private"):
        if getattr(address, f"is_{kind}"):
            return kind.replace("_", "-")
    return "public" if address.is_global else "non-public"


def _body(
    response: httpx.Response, url: httpx.URL, settings: ImageFetchSettings, deadline: float
) -> bytes:
    limit = settings.max_bytes
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise InvalidImage(f"the image at {url} is {declared} bytes, over the limit of {limit}")
    body = bytearray()
    for chunk in response.iter_bytes():
        body += chunk
        if len(body) > limit:
            raise InvalidImage(f"the image at {url} is over the limit of {limit} bytes")
        if time.monotonic() > deadline:
            raise httpx.ReadTimeout("the whole fetch's time is up")
    return bytes(body)
