"""Prefixed random object ids (128 bits of randomness)."""

from __future__ import annotations

import secrets

STORE = "str"
ENDPOINT = "we"
EVENT = "evt"
ATTEMPT = "att"


_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"  # RFC 4648 base32, lower-cased
_PAIRS = [a + b for a in _ALPHABET for b in _ALPHABET]  # every 10-bit group as two letters
_SHIFTS = range(120, -1, -10)


def b32(raw: bytes) -> str:
    """16 bytes as 26 lower-case base32 letters, unpadded: ``base64.b32encode`` (which is
    Python code and was 2 % of a delivery's CPU), with a table of letter pairs instead."""
    n = int.from_bytes(raw, "big") << 2  # 128 bits and b32's two zero bits: 13 pairs
    return "".join([_PAIRS[(n >> s) & 1023] for s in _SHIFTS])


def new_id(prefix: str) -> str:
    return f"{prefix}_{b32(secrets.token_bytes(16))}"


def has_prefix(value: str, prefix: str) -> bool:
    return value.startswith(prefix + "_") and 4 <= len(value) <= 64
