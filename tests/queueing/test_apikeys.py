"""API keys: long, random, and known to the server only by a digest under its secret."""

from __future__ import annotations

from queueing.apikeys import digest, new_key


def test_keys_are_long_random_and_known_by_a_keyed_digest() -> None:
    a, b = new_key(), new_key()
    assert a != b and len(a) >= 43 and a.startswith("iq-")
    assert digest(a, "s") == digest(a, "s") != digest(a, "t")
    assert a not in digest(a, "s")
