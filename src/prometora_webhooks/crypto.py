"""Secrets at rest: AES-256-GCM under ``SECRET_KEY``, the owning object's id as associated data.

A stored value is ``v1.<key id>.<base64(nonce || ciphertext)>``; the key id (first 8 hex digits
of SHA-256 of the key) lets a key rotation find what still needs re-encrypting.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM


class KeyError_(ValueError):
    """The secret key is missing or malformed."""


class DecryptError(ValueError):
    """A stored secret cannot be decrypted with the configured key(s)."""


def generate_key() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def parse_key(text: str) -> bytes:
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise KeyError_("must be base64 of 32 random bytes") from None
    if len(raw) != 32:
        raise KeyError_(f"must be base64 of 32 random bytes (got {len(raw)} bytes)")
    return raw


def key_id(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()[:8]


class SecretBox:
    def __init__(self, key: bytes, old_keys: tuple[bytes, ...] = ()) -> None:
        self._key = key
        self._old = old_keys
        self._kid = key_id(key)
        self._aead = AESGCM(key)
        self._by_id = {key_id(k): AESGCM(k) for k in old_keys}
        self._by_id[self._kid] = self._aead

    def keys(self) -> tuple[bytes, ...]:
        """Every key this box can decrypt with, the encrypting key first."""
        return (self._key, *self._old)

    @property
    def key_id(self) -> str:
        return self._kid

    def encrypt(self, plaintext: bytes, context: str) -> str:
        nonce = os.urandom(12)
        ct = self._aead.encrypt(nonce, plaintext, context.encode())
        return f"v1.{self._kid}.{base64.b64encode(nonce + ct).decode('ascii')}"

    def decrypt(self, stored: str, context: str) -> bytes:
        try:
            version, kid, blob = stored.split(".", 2)
            raw = base64.b64decode(blob, validate=True)
        except (ValueError, binascii.Error):
            raise DecryptError("stored secret is malformed") from None
        if len(raw) < 12 + 16:  # nonce + GCM tag
            raise DecryptError("stored secret is malformed")
        aead = self._by_id.get(kid)
        if version != "v1" or aead is None:
            raise DecryptError("stored secret was encrypted under an unknown key")
        try:
            return aead.decrypt(raw[:12], raw[12:], context.encode())
        except InvalidTag:
            raise DecryptError("stored secret failed authentication") from None

    def needs_reencrypt(self, stored: str) -> bool:
        return not stored.startswith(f"v1.{self._kid}.")


def load_or_create_key_file(path: Path) -> str:
    """The key kept beside a SQLite database, created (mode 0600) on first use."""
    if path.exists():
        return path.read_text(encoding="ascii").strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = generate_key()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(key + "\n")
    return key
