"""API keys: long random secrets, known to the server only by a keyed digest.

A key is 256 random bits, so a fast keyed hash (HMAC-SHA256 under a server secret) is the
right store: nothing slow is needed against guessing, and without the secret a copy of the
registry does not even let one test a guess.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

KEY_PREFIX = "iq-"


def new_key() -> str:
    """A fresh API key (shown once, never stored)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def new_key_id() -> str:
    """A public name for a key, to list and revoke it by."""
    return f"key_{secrets.token_hex(6)}"


def digest(key: str, secret: str) -> str:
    """The keyed digest the registry knows ``key`` by."""
    return hmac.new(secret.encode(), key.encode(), hashlib.sha256).hexdigest()
