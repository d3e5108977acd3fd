"""Standard Webhooks signatures: ``v1,<base64 HMAC-SHA256(key, "{id}.{ts}.{body}")>``."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Iterable

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32
MIN_KEY_BYTES = 24
MAX_KEY_BYTES = 64


class InvalidSecret(ValueError):
    pass


def generate_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def secret_key(secret: str) -> bytes:
    """The HMAC key a ``whsec_`` secret stands for (strict: prefix, base64, 24–64 bytes)."""
    if not secret.startswith(SECRET_PREFIX):
        raise InvalidSecret("secret must start with whsec_")
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        raise InvalidSecret("secret is not valid base64") from None
    if not MIN_KEY_BYTES <= len(key) <= MAX_KEY_BYTES:
        raise InvalidSecret("secret must encode 24 to 64 bytes")
    return key


def _payload(msg_id: str, timestamp: int, body: bytes) -> bytes:
    return b"%s.%d.%s" % (msg_id.encode(), timestamp, body)


def _v1(key: bytes, payload: bytes) -> str:
    return "v1," + base64.b64encode(hmac.digest(key, payload, hashlib.sha256)).decode("ascii")


def sign(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """One ``v1,<base64>`` signature."""
    return _v1(key, _payload(msg_id, timestamp, body))


def signature_header(keys: Iterable[bytes], msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value: one signature per key, newest key first (the signed
    payload is built once for all of them)."""
    payload = _payload(msg_id, timestamp, body)
    return " ".join([_v1(k, payload) for k in keys])


def verify(key: bytes, msg_id: str, timestamp: int, body: bytes, header: str) -> bool:
    """True when any ``v1`` signature in ``header`` matches (constant-time)."""
    expected = sign(key, msg_id, timestamp, body).encode()
    found = False
    for part in header.split():
        if part.startswith("v1,") and hmac.compare_digest(part.encode(), expected):
            found = True
    return found
