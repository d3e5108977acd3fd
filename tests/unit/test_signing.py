"""Standard Webhooks signatures: interoperability with the reference library, secrets, verify."""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from prometora_webhooks.signing import (
    InvalidSecret,
    generate_secret,
    secret_key,
    sign,
    signature_header,
    verify,
)

BODY = b'{"id": "evt_1", "type": "order.created", "created": "2026-01-04T12:00:00Z", "data": {}}'
MSG_ID = "evt_abc123"


def _secret(n: int, fill: int = 7) -> str:
    return "whsec_" + base64.b64encode(bytes([fill]) * n).decode()


def _headers(msg_id: str, ts: int, sig: str) -> dict[str, str]:
    return {"webhook-id": msg_id, "webhook-timestamp": str(ts), "webhook-signature": sig}


# -- secrets ------------------------------------------------------------------------------------


def test_generated_secret_has_prefix_and_32_bytes_of_standard_padded_base64() -> None:
    secret = generate_secret()
    assert secret.startswith("whsec_")
    body = secret.removeprefix("whsec_")
    assert len(body) % 4 == 0  # padded, as the Standard Webhooks libraries expect
    raw = base64.b64decode(body, validate=True)
    assert len(raw) == 32
    assert secret_key(secret) == raw


def test_generated_secrets_are_distinct() -> None:
    assert len({generate_secret() for _ in range(500)}) == 500


@pytest.mark.parametrize("n", [24, 32, 48, 64])
def test_secret_key_accepts_24_to_64_bytes(n: int) -> None:
    assert secret_key(_secret(n)) == bytes([7]) * n


@pytest.mark.parametrize(
    ("secret", "message"),
    [
        ("", "whsec_"),
        ("whsec", "whsec_"),
        ("WHSEC_" + base64.b64encode(b"k" * 32).decode(), "whsec_"),
        ("whsk_" + base64.b64encode(b"k" * 32).decode(), "whsec_"),
        (base64.b64encode(b"k" * 32).decode(), "whsec_"),  # bare base64 (Svix accepts it)
        (" whsec_" + base64.b64encode(b"k" * 32).decode(), "whsec_"),
        ("whsec_", "24 to 64 bytes"),
        ("whsec_!!!!", "base64"),
        ("whsec_" + base64.b64encode(b"k" * 32).decode().rstrip("="), "base64"),  # no padding
        ("whsec_" + base64.urlsafe_b64encode(b"\xfb\xff" * 16).decode(), "base64"),  # -_ chars
        ("whsec_" + base64.b64encode(b"k" * 32).decode() + "\n", "base64"),
        ("whsec_" + base64.b64encode(b"k" * 16).decode() + " " * 4, "base64"),
        ("whsec_" + base64.b64encode(b"k" * 32).decode() + "é", "base64"),
        (_secret(1), "24 to 64 bytes"),
        (_secret(16), "24 to 64 bytes"),
        (_secret(23), "24 to 64 bytes"),
        (_secret(65), "24 to 64 bytes"),
        (_secret(128), "24 to 64 bytes"),
    ],
)
def test_secret_key_is_strict(secret: str, message: str) -> None:
    with pytest.raises(InvalidSecret, match=message):
        secret_key(secret)


def test_invalid_secret_message_does_not_echo_the_secret() -> None:
    bad = "whsec_" + base64.b64encode(b"s" * 20).decode()
    with pytest.raises(InvalidSecret) as info:
        secret_key(bad)
    assert bad[6:] not in str(info.value)


# -- the signature itself -----------------------------------------------------------------------


def test_known_answer_from_the_standard_webhooks_test_vectors() -> None:
    key = secret_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    sig = sign(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}')
    assert sig == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_signature_shape() -> None:
    sig = sign(b"k" * 32, MSG_ID, 1_767_528_000, BODY)
    version, _, value = sig.partition(",")
    assert version == "v1"
    assert len(base64.b64decode(value, validate=True)) == 32  # SHA-256


@pytest.mark.parametrize(
    "body",
    [BODY, b"", b"\xff\xfe not utf-8 \x00", '{"name": "Jane\'s Céramics ✓"}'.encode()],
)
def test_our_signature_verifies_with_standardwebhooks(body: bytes) -> None:
    secret = generate_secret()
    ts = int(time.time())
    header = signature_header([secret_key(secret)], MSG_ID, ts, body)
    Webhook(secret).verify(body, _headers(MSG_ID, ts, header), json_parse=False)


@pytest.mark.parametrize("body", [BODY, b"", b"\xff\xfe not utf-8 \x00"])
def test_standardwebhooks_signature_verifies_with_ours(body: bytes) -> None:
    secret = generate_secret()
    ts = 1_767_528_000
    theirs = Webhook(secret).sign(MSG_ID, datetime.fromtimestamp(ts, tz=UTC), body)
    key = secret_key(secret)
    assert theirs == sign(key, MSG_ID, ts, body)
    assert verify(key, MSG_ID, ts, body, theirs)


def test_standardwebhooks_rejects_our_signature_under_another_secret() -> None:
    ts = int(time.time())
    header = signature_header([secret_key(generate_secret())], MSG_ID, ts, BODY)
    with pytest.raises(WebhookVerificationError):
        Webhook(generate_secret()).verify(BODY, _headers(MSG_ID, ts, header))


def test_standardwebhooks_rejects_our_signature_when_the_body_changes() -> None:
    secret = generate_secret()
    ts = int(time.time())
    header = signature_header([secret_key(secret)], MSG_ID, ts, BODY)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY + b" ", _headers(MSG_ID, ts, header))


# -- several signatures (rotation) --------------------------------------------------------------


def test_signature_header_lists_one_signature_per_key_newest_first() -> None:
    newest, middle, oldest = b"n" * 32, b"m" * 24, b"o" * 64
    ts = 1_767_528_000
    header = signature_header([newest, middle, oldest], MSG_ID, ts, BODY)
    assert header.split(" ") == [
        sign(newest, MSG_ID, ts, BODY),
        sign(middle, MSG_ID, ts, BODY),
        sign(oldest, MSG_ID, ts, BODY),
    ]
    assert len(set(header.split(" "))) == 3


def test_signature_header_with_one_key_is_a_single_signature() -> None:
    header = signature_header([b"n" * 32], MSG_ID, 1, BODY)
    assert header == sign(b"n" * 32, MSG_ID, 1, BODY)
    assert " " not in header


def test_every_rotated_secret_verifies_the_combined_header_with_standardwebhooks() -> None:
    secrets_ = [generate_secret() for _ in range(3)]
    ts = int(time.time())
    header = signature_header([secret_key(s) for s in secrets_], MSG_ID, ts, BODY)
    for s in secrets_:
        assert Webhook(s).verify(BODY, _headers(MSG_ID, ts, header)) == {
            "id": "evt_1",
            "type": "order.created",
            "created": "2026-01-04T12:00:00Z",
            "data": {},
        }
    with pytest.raises(WebhookVerificationError):
        Webhook(generate_secret()).verify(BODY, _headers(MSG_ID, ts, header))


# -- verify -------------------------------------------------------------------------------------

KEY = b"K" * 32
TS = 1_767_528_000
GOOD = sign(KEY, MSG_ID, TS, BODY)


def test_verify_accepts_the_matching_signature() -> None:
    assert verify(KEY, MSG_ID, TS, BODY, GOOD) is True


@pytest.mark.parametrize(
    ("key", "msg_id", "ts", "body"),
    [
        (KEY, MSG_ID, TS, BODY + b" "),  # body: one extra byte
        (KEY, MSG_ID, TS, BODY.replace(b'"evt_1"', b'"evt_2"')),  # body: one changed byte
        (KEY, MSG_ID, TS, BODY.replace(b": ", b":")),  # re-serialised JSON
        (KEY, MSG_ID, TS, b""),
        (KEY, MSG_ID + "x", TS, BODY),  # id
        (KEY, "evt_abc124", TS, BODY),
        (KEY, MSG_ID, TS + 1, BODY),  # timestamp
        (KEY, MSG_ID, TS - 300, BODY),
        (b"L" * 32, MSG_ID, TS, BODY),  # another endpoint's key
    ],
)
def test_verify_rejects_tampering(key: bytes, msg_id: str, ts: int, body: bytes) -> None:
    assert verify(key, msg_id, ts, body, GOOD) is False


@pytest.mark.parametrize(
    "header",
    [
        "",
        " ",
        "v1,",
        "v1",
        GOOD.removeprefix("v1,"),  # no version
        "v2," + GOOD.removeprefix("v1,"),  # unknown version
        "v1a," + GOOD.removeprefix("v1,"),
        GOOD[:-2],  # truncated
        GOOD + "x",
        "v1,!!!notbase64!!!",
        "v1," + base64.b64encode(b"\x00" * 32).decode(),
    ],
)
def test_verify_rejects_malformed_or_wrong_entries(header: str) -> None:
    assert verify(KEY, MSG_ID, TS, BODY, header) is False


@pytest.mark.parametrize(
    "header",
    [
        f"{GOOD}",
        f"v1,AAAA {GOOD}",
        f"{GOOD} v1,AAAA",
        f"garbage v2,xyz nocomma {GOOD} v1,",
        f"  {GOOD}  ",
        signature_header([b"new" * 11, KEY], MSG_ID, TS, BODY),  # old key second
        signature_header([KEY, b"old" * 11], MSG_ID, TS, BODY),
    ],
)
def test_verify_accepts_any_matching_entry_among_others(header: str) -> None:
    assert verify(KEY, MSG_ID, TS, BODY, header) is True


def test_verify_with_an_old_key_fails_after_it_is_dropped_from_the_header() -> None:
    old, new = b"o" * 32, b"n" * 32
    both = signature_header([new, old], MSG_ID, TS, BODY)
    only_new = signature_header([new], MSG_ID, TS, BODY)
    assert verify(old, MSG_ID, TS, BODY, both)
    assert not verify(old, MSG_ID, TS, BODY, only_new)
    assert verify(new, MSG_ID, TS, BODY, only_new)
