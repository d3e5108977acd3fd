"""The receiver toolkit: interoperable with `standardwebhooks` both ways, strict on the rest."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI
from hypothesis import given, settings
from hypothesis import strategies as st
from standardwebhooks import Webhook
from standardwebhooks import WebhookVerificationError as StdError
from starlette.datastructures import Headers

from prometora_webhooks.receiver import Reason, WebhookVerificationError, verify
from prometora_webhooks.receiver.fastapi import verified_event
from prometora_webhooks.receiver.flask import verify_webhook
from prometora_webhooks.signing import generate_secret, secret_key, signature_header

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SECRET = "whsec_" + base64.b64encode(bytes(range(32))).decode()
OTHER_SECRET = "whsec_" + base64.b64encode(bytes(range(1, 33))).decode()
NOW = 1_767_528_000  # 2026-01-04T12:00:00Z
EVENT = {
    "id": "evt_abc123",
    "type": "order.created",
    "created": "2026-01-04T12:00:00Z",
    "data": {
        "id": "ord_xyz789",
        "total": 9999,
        "currency": "usd",
        "customer": {"email": "john@example.com", "name": "John Doe"},
        "items": [
            {"listing_id": "lst_123", "title": "Handmade Pottery", "quantity": 1, "price": 9999}
        ],
    },
}
BODY = json.dumps(EVENT).encode()


def std_sign(
    body: bytes = BODY, msg_id: str = "evt_abc123", ts: int = NOW, secret: str = SECRET
) -> dict[str, str]:
    """Headers as the reference library signs them."""
    sig = Webhook(secret).sign(msg_id, datetime.fromtimestamp(ts, tz=UTC), body)
    return {"webhook-id": msg_id, "webhook-timestamp": str(ts), "webhook-signature": sig}


def reason_of(body: bytes, headers: Any, secret: str = SECRET, **kw: Any) -> Reason:
    with pytest.raises(WebhookVerificationError) as info:
        verify(body, headers, secret, now=kw.pop("now", NOW), **kw)
    assert isinstance(info.value.reason, Reason)
    assert info.value.message
    assert len(secret) < 8 or secret not in str(info.value)
    return info.value.reason


# -- accepted ---------------------------------------------------------------------------------


def test_accepts_what_standardwebhooks_signs() -> None:
    assert verify(BODY, std_sign(), SECRET, now=NOW) == EVENT


def test_accepts_what_our_sender_signs_and_standardwebhooks_agrees() -> None:
    headers = {
        "webhook-id": "evt_abc123",
        "webhook-timestamp": str(NOW),
        "webhook-signature": signature_header([secret_key(SECRET)], "evt_abc123", NOW, BODY),
    }
    assert verify(BODY, headers, SECRET, now=NOW) == EVENT
    std = Webhook(SECRET)
    now = int(time.time())
    headers["webhook-timestamp"] = str(now)
    headers["webhook-signature"] = signature_header([secret_key(SECRET)], "evt_abc123", now, BODY)
    assert std.verify(BODY, headers) == EVENT


@settings(max_examples=60, deadline=None)
@given(
    msg_id=st.from_regex(r"evt_[A-Za-z0-9]{1,40}", fullmatch=True),
    data=st.dictionaries(st.text(max_size=10), st.text(max_size=30) | st.integers(), max_size=5),
    key=st.binary(min_size=24, max_size=64),
    flip=st.integers(min_value=0),
)
def test_agrees_with_standardwebhooks_on_random_events(
    msg_id: str, data: dict[str, Any], key: bytes, flip: int
) -> None:
    secret = "whsec_" + base64.b64encode(key).decode()
    body = json.dumps(
        {"id": msg_id, "type": "t", "created": "2026-01-04T12:00:00Z", "data": data},
        ensure_ascii=False,
    ).encode()
    now = int(time.time())
    headers = std_sign(body, msg_id, now, secret)
    assert verify(body, headers, secret) == Webhook(secret).verify(body, headers)
    tampered = bytearray(body)
    tampered[flip % len(body)] ^= 0x01
    with pytest.raises(StdError):
        Webhook(secret).verify(bytes(tampered), headers)
    with pytest.raises(WebhookVerificationError):
        verify(bytes(tampered), headers, secret)


def test_header_names_are_case_insensitive() -> None:
    h = std_sign()
    headers = {
        "Webhook-Id": h["webhook-id"],
        "WEBHOOK-TIMESTAMP": h["webhook-timestamp"],
        "webhook-Signature": h["webhook-signature"],
    }
    assert verify(BODY, headers, SECRET, now=NOW)["id"] == "evt_abc123"


@pytest.mark.parametrize("wrap", [Headers, httpx.Headers])
def test_framework_header_objects(wrap: Any) -> None:
    assert verify(BODY, wrap(std_sign()), SECRET, now=NOW) == EVENT


@pytest.mark.parametrize("secret", [SECRET, OTHER_SECRET])
def test_rotation_any_of_several_signatures_matches(secret: str) -> None:
    keys = [secret_key(OTHER_SECRET), secret_key(SECRET)]  # newest first, as during a rotation
    sig = signature_header(keys, "evt_abc123", NOW, BODY)
    headers = {"webhook-id": "evt_abc123", "webhook-timestamp": str(NOW), "webhook-signature": sig}
    assert verify(BODY, headers, secret, now=NOW) == EVENT


def test_unknown_versions_are_skipped_beside_a_valid_v1() -> None:
    h = std_sign()
    h["webhook-signature"] = "v1a,AAAA v2,BBBB  " + h["webhook-signature"] + " junk"
    assert verify(BODY, h, SECRET, now=NOW) == EVENT


@pytest.mark.parametrize("offset", [-300, 0, 300])
def test_timestamp_within_tolerance_either_way(offset: int) -> None:
    assert verify(BODY, std_sign(), SECRET, now=NOW + offset) == EVENT


def test_tolerance_is_configurable() -> None:
    assert verify(BODY, std_sign(), SECRET, tolerance=3600, now=NOW + 3000) == EVENT
    assert reason_of(BODY, std_sign(), tolerance=10, now=NOW + 11) is Reason.TIMESTAMP_TOO_OLD
    with pytest.raises(ValueError, match="tolerance"):
        verify(BODY, std_sign(), SECRET, tolerance=-1, now=NOW)


def test_a_decoded_str_body_is_taken_as_its_utf8_bytes() -> None:
    body = json.dumps({**EVENT, "data": {"title": "Vase – blue"}}, ensure_ascii=False)
    headers = std_sign(body.encode())
    assert verify(body, headers, SECRET, now=NOW)["data"]["title"] == "Vase – blue"


# -- rejected: every case has its reason -------------------------------------------------------


def _without(name: str) -> dict[str, str]:
    return {k: v for k, v in std_sign().items() if k != name}


def _with(**changes: str) -> dict[str, str]:
    h = std_sign()
    h.update({k.replace("_", "-"): v for k, v in changes.items()})
    return h


def _signed_body(body: bytes, msg_id: str = "evt_abc123") -> tuple[bytes, dict[str, str]]:
    return body, std_sign(body, msg_id)


def _good_sig(body: bytes = BODY, msg_id: str = "evt_abc123", ts: int = NOW) -> str:
    return std_sign(body, msg_id, ts)["webhook-signature"]


FORGED: list[tuple[str, bytes, Any, Reason]] = [
    ("no webhook-id", BODY, _without("webhook-id"), Reason.MISSING_HEADER),
    ("no webhook-timestamp", BODY, _without("webhook-timestamp"), Reason.MISSING_HEADER),
    ("no webhook-signature", BODY, _without("webhook-signature"), Reason.MISSING_HEADER),
    ("no headers at all", BODY, {}, Reason.MISSING_HEADER),
    ("empty signature", BODY, _with(webhook_signature=""), Reason.MISSING_HEADER),
    (
        "webhook-id twice, two cases",
        BODY,
        {**std_sign(), "Webhook-Id": "evt_other"},
        Reason.DUPLICATE_HEADER,
    ),
    (
        "signature header repeated",
        BODY,
        httpx.Headers([*std_sign().items(), ("webhook-signature", "v1,AAAA")]),
        Reason.DUPLICATE_HEADER,
    ),
    (
        "webhook-id repeated (as Starlette keeps it)",
        BODY,
        Headers(
            raw=[(k.encode(), v.encode()) for k, v in [*std_sign().items(), ("webhook-id", "e")]]
        ),
        Reason.DUPLICATE_HEADER,
    ),
    ("ids joined by a proxy", BODY, _with(webhook_id="evt_abc123, evt_x"), Reason.INVALID_ID),
    ("non-ASCII id", BODY, _with(webhook_id="evt_ä"), Reason.INVALID_ID),
    ("id too long", BODY, _with(webhook_id="e" * 256), Reason.INVALID_ID),
    ("timestamp not a number", BODY, _with(webhook_timestamp="soon"), Reason.INVALID_TIMESTAMP),
    ("fractional timestamp", BODY, _with(webhook_timestamp=f"{NOW}.5"), Reason.INVALID_TIMESTAMP),
    ("negative timestamp", BODY, _with(webhook_timestamp="-1"), Reason.INVALID_TIMESTAMP),
    ("huge timestamp", BODY, _with(webhook_timestamp="9" * 40), Reason.INVALID_TIMESTAMP),
    (
        "HTTP-date timestamp",
        BODY,
        _with(webhook_timestamp="Sun, 04 Jan 2026"),
        Reason.INVALID_TIMESTAMP,
    ),
    (
        "stale: replayed after 301 s",
        BODY,
        std_sign(ts=NOW - 301),
        Reason.TIMESTAMP_TOO_OLD,
    ),
    ("from the future: 301 s ahead", BODY, std_sign(ts=NOW + 301), Reason.TIMESTAMP_TOO_NEW),
    (
        "only v1a signatures",
        BODY,
        _with(webhook_signature="v1a," + _good_sig()[3:]),
        Reason.NO_SIGNATURE,
    ),
    (
        "only a v2 signature",
        BODY,
        _with(webhook_signature="v2," + _good_sig()[3:]),
        Reason.NO_SIGNATURE,
    ),
    (
        "signature without version",
        BODY,
        _with(webhook_signature=_good_sig()[3:]),
        Reason.NO_SIGNATURE,
    ),
    (
        "signature not base64",
        BODY,
        _with(webhook_signature="v1,!!!not-base64!!!"),
        Reason.NO_SIGNATURE,
    ),
    (
        "Stripe-style header",
        BODY,
        _with(webhook_signature=f"t={NOW},v1=abcdef"),
        Reason.NO_SIGNATURE,
    ),
    ("wrong secret", BODY, std_sign(secret=OTHER_SECRET), Reason.SIGNATURE_MISMATCH),
    (
        "tampered body (total changed)",
        BODY.replace(b"9999", b"1", 1),
        std_sign(),
        Reason.SIGNATURE_MISMATCH,
    ),
    ("body with a trailing newline", BODY + b"\n", std_sign(), Reason.SIGNATURE_MISMATCH),
    (
        "re-serialised body",
        json.dumps(EVENT, separators=(",", ":")).encode(),
        std_sign(),
        Reason.SIGNATURE_MISMATCH,
    ),
    (
        "tampered webhook-id",
        BODY,
        _with(webhook_id="evt_abc124"),
        Reason.SIGNATURE_MISMATCH,
    ),
    (
        "tampered timestamp (fresh header, old signature)",
        BODY,
        _with(webhook_timestamp=str(NOW + 1)),
        Reason.SIGNATURE_MISMATCH,
    ),
    (
        "signature of another event replayed",
        BODY,
        _with(webhook_signature=_good_sig(msg_id="evt_other")),
        Reason.SIGNATURE_MISMATCH,
    ),
    (
        "truncated signature",
        BODY,
        _with(webhook_signature="v1," + base64.b64encode(b"\x00" * 16).decode()),
        Reason.SIGNATURE_MISMATCH,
    ),
    ("signed but not JSON", *_signed_body(b"total=9999"), Reason.INVALID_JSON),
    ("signed but not UTF-8", *_signed_body(b'{"id": "\xff"}'), Reason.INVALID_JSON),
    ("signed NaN", *_signed_body(b'{"id": NaN}'), Reason.INVALID_JSON),
    ("signed UTF-16", *_signed_body(json.dumps(EVENT).encode("utf-16")), Reason.INVALID_JSON),
    ("signed with a BOM", *_signed_body(b"\xef\xbb\xbf" + BODY), Reason.INVALID_JSON),
    ("signed empty body", *_signed_body(b""), Reason.INVALID_JSON),
    ("signed JSON array", *_signed_body(b"[1, 2]"), Reason.INVALID_EVENT),
    ("signed JSON string", *_signed_body(b'"evt_abc123"'), Reason.INVALID_EVENT),
    (
        "signed object without type",
        *_signed_body(json.dumps({**EVENT, "type": None}).encode()),
        Reason.INVALID_EVENT,
    ),
    (
        "signed object without data",
        *_signed_body(json.dumps({k: v for k, v in EVENT.items() if k != "data"}).encode()),
        Reason.INVALID_EVENT,
    ),
    (
        "body id differs from webhook-id",
        *_signed_body(BODY, msg_id="evt_other"),
        Reason.ID_MISMATCH,
    ),
]


@pytest.mark.parametrize(
    ("body", "headers", "reason"),
    [pytest.param(b, h, r, id=name) for name, b, h, r in FORGED],
)
def test_rejects_forged_or_malformed(body: bytes, headers: Any, reason: Reason) -> None:
    assert reason_of(body, headers) is reason


@pytest.mark.parametrize(
    "secret",
    [
        "",
        "not-a-secret",
        "WHSEC_" + base64.b64encode(b"k" * 32).decode(),
        "whsec_***",
        "whsec_" + base64.b64encode(b"k" * 16).decode(),  # too short
        "whsec_" + base64.b64encode(b"k" * 65).decode(),  # too long
        "whsec_" + base64.b64encode(b"k" * 32).decode().rstrip("="),
    ],
)
def test_unusable_secret(secret: str) -> None:
    assert reason_of(BODY, std_sign(), secret=secret) is Reason.INVALID_SECRET


def test_too_many_signatures_are_refused() -> None:
    h = _with(webhook_signature=" ".join(["v1,AAAA"] * 40 + [_good_sig()]))
    assert reason_of(BODY, h) is Reason.NO_SIGNATURE


def test_reason_is_a_plain_string_too() -> None:
    err = WebhookVerificationError(Reason.SIGNATURE_MISMATCH, "no signature matches")
    assert err.reason == "signature_mismatch"
    assert str(err) == "signature_mismatch: no signature matches"


# -- FastAPI / Starlette -----------------------------------------------------------------------


def _fastapi_app(secret: Any = SECRET) -> FastAPI:
    app = FastAPI()

    @app.post("/hook")
    async def hook(event: dict[str, Any] = Depends(verified_event(secret))) -> dict[str, Any]:
        return {"got": event["id"]}

    return app


def _asgi(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


async def test_fastapi_dependency_accepts_and_rejects() -> None:
    now = int(time.time())
    async with _asgi(_fastapi_app(lambda: SECRET)) as client:
        ok = await client.post("/hook", content=BODY, headers=std_sign(ts=now))
        assert ok.status_code == 200, ok.text
        assert ok.json() == {"got": "evt_abc123"}

        bad = await client.post("/hook", content=BODY + b" ", headers=std_sign(ts=now))
        assert bad.status_code == 400
        assert "signature_mismatch" in bad.json()["detail"]

        stale = await client.post("/hook", content=BODY, headers=std_sign(ts=now - 3600))
        assert stale.status_code == 400
        assert "timestamp_too_old" in stale.json()["detail"]


async def test_fastapi_dependency_answers_500_when_the_secret_is_misconfigured() -> None:
    async with _asgi(_fastapi_app("whsec_")) as client:
        r = await client.post("/hook", content=BODY, headers=std_sign(ts=int(time.time())))
    assert r.status_code == 500
    assert "whsec" not in r.text


# -- Flask -------------------------------------------------------------------------------------


def _flask_app(secret: Any = None) -> Any:
    from flask import Flask

    app = Flask(__name__)
    app.config["PROMETORA_WEBHOOK_SECRET"] = SECRET

    @app.post("/hook/<shop>")
    @verify_webhook(secret)
    def hook(event: dict[str, Any], shop: str) -> dict[str, str]:
        return {"got": event["id"], "shop": shop}

    return app


@pytest.mark.parametrize("secret", [None, SECRET, lambda: SECRET])
def test_flask_decorator_accepts(secret: Any) -> None:
    client = _flask_app(secret).test_client()
    r = client.post("/hook/s1", data=BODY, headers=std_sign(ts=int(time.time())))
    assert r.status_code == 200, r.text
    assert r.get_json() == {"got": "evt_abc123", "shop": "s1"}


def test_flask_decorator_rejects_with_the_reason() -> None:
    client = _flask_app().test_client()
    r = client.post(
        "/hook/s1", data=BODY, headers=std_sign(ts=int(time.time()), secret=OTHER_SECRET)
    )
    assert r.status_code == 400
    assert r.get_json()["error"]["code"] == "signature_mismatch"
    r = client.post("/hook/s1", data=BODY, headers=_without("webhook-id"))
    assert r.status_code == 400
    assert r.get_json()["error"]["code"] == "missing_header"


def test_flask_decorator_answers_500_when_the_secret_is_misconfigured() -> None:
    client = _flask_app("whsec_").test_client()
    r = client.post("/hook/s1", data=BODY, headers=std_sign(ts=int(time.time())))
    assert r.status_code == 500
    assert r.get_json()["error"]["code"] == "misconfigured"


# -- the Node.js snippet -----------------------------------------------------------------------

NODE_CHECK = """
const { verifyWebhook, WebhookVerificationError } = require(process.argv[1]);
const cases = JSON.parse(require("fs").readFileSync(0, "utf8"));
const out = cases.map(([body, headers, secret, now]) => {
  try {
    return { ok: verifyWebhook(Buffer.from(body, "base64"), headers, secret, 300, now).id };
  } catch (e) {
    if (!(e instanceof WebhookVerificationError)) throw e;
    return { reason: e.reason };
  }
});
console.log(JSON.stringify(out));
"""


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_node_snippet_agrees_with_the_python_receiver() -> None:
    rotated = signature_header(
        [secret_key(generate_secret()), secret_key(SECRET)], "evt_abc123", NOW, BODY
    )
    cases: list[tuple[bytes, Any]] = [
        (BODY, std_sign()),
        (BODY, {k.upper(): v for k, v in std_sign().items()}),
        (BODY, {**std_sign(), "webhook-signature": rotated}),
    ]
    cases += [(b, h) for _, b, h, _ in FORGED if isinstance(h, dict)]
    payload = [[base64.b64encode(b).decode(), dict(h), SECRET, NOW] for b, h in cases] + [
        [base64.b64encode(BODY).decode(), std_sign(), "whsec_short", NOW]
    ]
    expected: list[dict[str, str]] = []
    for b, h in cases:
        try:
            expected.append({"ok": verify(b, h, SECRET, now=NOW)["id"]})
        except WebhookVerificationError as exc:
            expected.append({"reason": exc.reason.value})
    expected.append({"reason": "invalid_secret"})
    proc = subprocess.run(
        ["node", "-e", NODE_CHECK, str(EXAMPLES / "verify.js")],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert json.loads(proc.stdout) == expected
