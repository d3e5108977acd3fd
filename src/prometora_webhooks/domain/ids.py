"""Prefixed random object ids (128 bits of randomness)."""

from __future__ import annotations

import base64
import secrets

STORE = "str"
ENDPOINT = "we"
EVENT = "evt"
ATTEMPT = "att"


def new_id(prefix: str) -> str:
    raw = base64.b32encode(secrets.token_bytes(16)).decode("ascii").rstrip("=").lower()
    return f"{prefix}_{raw}"


def has_prefix(value: str, prefix: str) -> bool:
    return value.startswith(prefix + "_") and 4 <= len(value) <= 64
