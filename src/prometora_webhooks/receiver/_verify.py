"""Verify one delivery: headers, timestamp window, HMAC signatures, then the event body."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import time
from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Any

from ..signing import InvalidSecret, secret_key

ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"
REQUIRED_HEADERS = (ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER)

# Visible ASCII only: a header a WSGI server joined from duplicates ("a, b") has a space.
_ID = re.compile(r"[\x21-\x7e]{1,255}")
_TIMESTAMP = re.compile(r"[0-9]{1,15}")
_MAX_SIGNATURES = 32  # a rotation sends two or three; more is an attempt to make us work


class Reason(StrEnum):
    """Why a delivery was rejected (a ``str``: compare with plain strings or log it as is)."""

    MISSING_HEADER = "missing_header"
    DUPLICATE_HEADER = "duplicate_header"
    INVALID_ID = "invalid_id"
    INVALID_TIMESTAMP = "invalid_timestamp"
    TIMESTAMP_TOO_OLD = "timestamp_too_old"
    TIMESTAMP_TOO_NEW = "timestamp_too_new"
    NO_SIGNATURE = "no_signature"
    """The signature header holds no well-formed ``v1,<base64>`` signature."""
    SIGNATURE_MISMATCH = "signature_mismatch"
    INVALID_JSON = "invalid_json"
    INVALID_EVENT = "invalid_event"
    ID_MISMATCH = "id_mismatch"
    INVALID_SECRET = "invalid_secret"
    """The receiver's own configuration is wrong, not the request."""


class WebhookVerificationError(Exception):
    """The one error ``verify`` raises: the request must not be trusted.

    ``reason`` is a :class:`Reason`; ``message`` a short sentence safe to send back to the
    caller (it never contains the secret or the expected signature).
    """

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(f"{reason.value}: {message}")
        self.reason = reason
        self.message = message


def _fail(reason: Reason, message: str) -> WebhookVerificationError:
    return WebhookVerificationError(reason, message)


def header_pairs(headers: Mapping[str, str]) -> Iterable[tuple[str, str]]:
    """Every (name, value) pair, repeated names included where the mapping keeps them."""
    multi = getattr(headers, "multi_items", None)  # httpx.Headers, Starlette's ImmutableMultiDict
    if callable(multi):
        pairs: Iterable[tuple[str, str]] = multi()
        return pairs
    return headers.items()  # Starlette's Headers and aiohttp's CIMultiDict repeat names here


def _required(pairs: Iterable[tuple[str, str]]) -> tuple[str, str, str]:
    found: dict[str, list[str]] = {name: [] for name in REQUIRED_HEADERS}
    for name, value in pairs:
        values = found.get(name.lower())
        if values is not None:
            values.append(value)
    for name, values in found.items():
        if not values or not values[0].strip():
            raise _fail(Reason.MISSING_HEADER, f"missing {name} header")
        if len(values) > 1:
            raise _fail(Reason.DUPLICATE_HEADER, f"{name} header sent more than once")
    return found[ID_HEADER][0], found[TIMESTAMP_HEADER][0], found[SIGNATURE_HEADER][0]


def _signatures(header: str) -> list[bytes]:
    """The decoded ``v1`` signatures; other versions (``v1a``...) are skipped, as the spec says."""
    parts = header.split()
    if len(parts) > _MAX_SIGNATURES:
        raise _fail(Reason.NO_SIGNATURE, f"more than {_MAX_SIGNATURES} signatures")
    sigs = []
    for part in parts:
        version, sep, value = part.partition(",")
        if version != "v1" or not sep:
            continue
        try:
            sigs.append(base64.b64decode(value, validate=True))
        except (binascii.Error, ValueError):
            continue
    if not sigs:
        raise _fail(Reason.NO_SIGNATURE, "no v1 signature in the webhook-signature header")
    return sigs


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _event(body: bytes, msg_id: str) -> dict[str, Any]:
    try:
        event = json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError):
        raise _fail(Reason.INVALID_JSON, "body is not valid JSON") from None
    if not isinstance(event, dict):
        raise _fail(Reason.INVALID_EVENT, "body is not a JSON object")
    for field in ("id", "type", "created"):
        if not isinstance(event.get(field), str):
            raise _fail(Reason.INVALID_EVENT, f"event has no string {field!r}")
    if "data" not in event:
        raise _fail(Reason.INVALID_EVENT, "event has no 'data'")
    if event["id"] != msg_id:
        raise _fail(Reason.ID_MISMATCH, "event id differs from the webhook-id header")
    return event


def verify_pairs(
    body: bytes,
    pairs: Iterable[tuple[str, str]],
    secret: str,
    tolerance: int = 300,
    *,
    now: float | None = None,
) -> dict[str, Any]:
    """:func:`verify` over (name, value) pairs, for frameworks whose headers are no Mapping."""
    if tolerance < 0:
        raise ValueError("tolerance must be >= 0 seconds")
    if isinstance(body, str):  # a decoded body: sign what the sender sent, its UTF-8 bytes
        body = body.encode()
    try:
        key = secret_key(secret)
    except InvalidSecret as exc:
        raise _fail(Reason.INVALID_SECRET, f"the receiver's secret is unusable: {exc}") from None

    msg_id, ts_header, sig_header = _required(pairs)
    if not _ID.fullmatch(msg_id):
        raise _fail(Reason.INVALID_ID, "webhook-id must be 1-255 visible ASCII characters")
    if not _TIMESTAMP.fullmatch(ts_header):
        raise _fail(Reason.INVALID_TIMESTAMP, "webhook-timestamp must be whole unix seconds")
    age = (time.time() if now is None else now) - int(ts_header)
    if age > tolerance:
        raise _fail(Reason.TIMESTAMP_TOO_OLD, f"timestamp is {int(age)} s old (limit {tolerance})")
    if -age > tolerance:
        raise _fail(Reason.TIMESTAMP_TOO_NEW, f"timestamp is {int(-age)} s in the future")

    signatures = _signatures(sig_header)
    # The header's exact text is what the sender signed, so it is used as it came.
    expected = hmac.digest(key, f"{msg_id}.{ts_header}.".encode() + body, hashlib.sha256)
    matched = False
    for sig in signatures:  # no early exit: the time taken does not tell which one matched
        matched |= hmac.compare_digest(sig, expected)
    if not matched:
        raise _fail(Reason.SIGNATURE_MISMATCH, "no signature matches this secret")
    return _event(body, msg_id)


def verify(
    body: bytes,
    headers: Mapping[str, str],
    secret: str,
    tolerance: int = 300,
    *,
    now: float | None = None,
) -> dict[str, Any]:
    """Check one delivery and return its event; raise :class:`WebhookVerificationError` if not.

    ``body`` is the raw request body, byte for byte, *before* any JSON parsing. ``headers`` is
    the request's headers (names in any case). ``secret`` is the endpoint's ``whsec_…`` secret.
    ``tolerance`` is how far, in seconds, ``webhook-timestamp`` may be from now, either way.
    ``now`` (unix seconds) replaces the clock, for tests.

    Every input that is not a genuine, fresh delivery raises the same error type, whose
    ``reason`` says why (see :class:`Reason`).
    """
    return verify_pairs(body, header_pairs(headers), secret, tolerance, now=now)
