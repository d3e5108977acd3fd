"""Secrets at rest: AES-256-GCM with the owner's id as associated data."""

from __future__ import annotations

import base64
import hashlib

import pytest

from prometora_webhooks.crypto import (
    DecryptError,
    KeyError_,
    SecretBox,
    generate_key,
    key_id,
    parse_key,
)

KEY_A = bytes(range(32))
KEY_B = bytes(range(1, 33))
SECRET = b"whsec_" + base64.b64encode(b"s" * 32)
CTX = "secret:we_aaaaaaaaaaaaaaaaaaaaaaaaaa"


# -- keys ---------------------------------------------------------------------------------------


def test_generate_key_is_base64_of_32_random_bytes() -> None:
    text = generate_key()
    assert len(base64.b64decode(text, validate=True)) == 32
    assert parse_key(text) == base64.b64decode(text)
    assert len({generate_key() for _ in range(100)}) == 100


def test_parse_key_ignores_surrounding_whitespace_like_a_key_file_newline() -> None:
    text = base64.b64encode(KEY_A).decode()
    assert parse_key(f"  {text}\n") == KEY_A


@pytest.mark.parametrize(
    ("text", "detail"),
    [
        ("", "got 0 bytes"),
        ("   ", "got 0 bytes"),
        (base64.b64encode(b"k" * 31).decode(), "got 31 bytes"),
        (base64.b64encode(b"k" * 33).decode(), "got 33 bytes"),
        (base64.b64encode(b"k" * 64).decode(), "got 64 bytes"),
        (base64.b64encode(b"k" * 16).decode(), "got 16 bytes"),
        ("not base64 at all!", "32 random bytes"),
        (base64.b64encode(KEY_A).decode().rstrip("="), "32 random bytes"),  # padding missing
        (base64.urlsafe_b64encode(b"\xfb\xff" * 16).decode(), "32 random bytes"),  # -_ alphabet
        (base64.b64encode(KEY_A).decode()[:20] + " " + base64.b64encode(KEY_A).decode()[20:], "32"),
        (KEY_A.hex(), "32 random bytes"),  # hex is not base64 of 32 bytes
    ],
)
def test_parse_key_errors(text: str, detail: str) -> None:
    with pytest.raises(KeyError_, match="base64 of 32 random bytes") as info:
        parse_key(text)
    assert detail in str(info.value)


def test_parse_key_error_does_not_echo_the_key() -> None:
    text = base64.b64encode(b"secretmaterial!!" * 2 + b"x").decode()
    with pytest.raises(KeyError_) as info:
        parse_key(text)
    assert text not in str(info.value)


def test_key_id_is_the_first_8_hex_digits_of_sha256() -> None:
    assert key_id(KEY_A) == hashlib.sha256(KEY_A).hexdigest()[:8]
    assert key_id(KEY_A) != key_id(KEY_B)
    assert SecretBox(KEY_A).key_id == key_id(KEY_A)


# -- encrypt / decrypt --------------------------------------------------------------------------


@pytest.mark.parametrize("plaintext", [SECRET, b"", b"\x00\xff" * 100, "ключ ✓".encode()])
def test_round_trip(plaintext: bytes) -> None:
    box = SecretBox(KEY_A)
    stored = box.encrypt(plaintext, CTX)
    assert box.decrypt(stored, CTX) == plaintext


def test_stored_form_names_version_and_key_and_hides_the_plaintext() -> None:
    box = SecretBox(KEY_A)
    stored = box.encrypt(SECRET, CTX)
    version, kid, blob = stored.split(".")
    assert (version, kid) == ("v1", key_id(KEY_A))
    raw = base64.b64decode(blob, validate=True)
    assert len(raw) == 12 + len(SECRET) + 16  # nonce, ciphertext, tag
    assert b"whsec_" not in raw
    assert "whsec_" not in stored
    assert base64.b64encode(b"s" * 32).decode() not in stored


def test_each_encryption_uses_a_fresh_nonce() -> None:
    box = SecretBox(KEY_A)
    stored = {box.encrypt(SECRET, CTX) for _ in range(50)}
    assert len(stored) == 50
    nonces = {base64.b64decode(s.split(".")[2])[:12] for s in stored}
    assert len(nonces) == 50


def test_associated_data_binds_the_endpoint_id() -> None:
    box = SecretBox(KEY_A)
    stored = box.encrypt(SECRET, "secret:we_one")
    with pytest.raises(DecryptError, match="failed authentication"):
        box.decrypt(stored, "secret:we_two")
    with pytest.raises(DecryptError, match="failed authentication"):
        box.decrypt(stored, "headers:we_one")  # same id, other purpose
    with pytest.raises(DecryptError, match="failed authentication"):
        box.decrypt(stored, "")
    assert box.decrypt(stored, "secret:we_one") == SECRET


def test_ciphertexts_swapped_between_rows_do_not_decrypt() -> None:
    box = SecretBox(KEY_A)
    one = box.encrypt(b"whsec_one", "secret:we_1")
    two = box.encrypt(b"whsec_two", "secret:we_2")
    with pytest.raises(DecryptError):
        box.decrypt(two, "secret:we_1")
    with pytest.raises(DecryptError):
        box.decrypt(one, "secret:we_2")


def test_wrong_key_fails() -> None:
    stored = SecretBox(KEY_A).encrypt(SECRET, CTX)
    with pytest.raises(DecryptError, match="unknown key"):
        SecretBox(KEY_B).decrypt(stored, CTX)


def test_wrong_key_under_the_right_key_id_fails_authentication() -> None:
    stored = SecretBox(KEY_A).encrypt(SECRET, CTX)
    forged = stored.replace(key_id(KEY_A), key_id(KEY_B), 1)
    with pytest.raises(DecryptError, match="failed authentication"):
        SecretBox(KEY_B).decrypt(forged, CTX)


def test_old_keys_still_decrypt_and_need_reencrypting() -> None:
    old_box = SecretBox(KEY_A)
    old_stored = old_box.encrypt(SECRET, CTX)
    box = SecretBox(KEY_B, old_keys=(KEY_A,))
    assert box.key_id == key_id(KEY_B)
    assert box.decrypt(old_stored, CTX) == SECRET
    assert box.needs_reencrypt(old_stored) is True
    new_stored = box.encrypt(SECRET, CTX)
    assert new_stored.startswith(f"v1.{key_id(KEY_B)}.")
    assert box.needs_reencrypt(new_stored) is False
    assert old_box.needs_reencrypt(new_stored) is True
    with pytest.raises(DecryptError):
        old_box.decrypt(new_stored, CTX)  # the old key alone cannot read the new value


@pytest.mark.parametrize(
    "stored", ["", "garbage", "v2.abcdef12.AAAA", f"v0.{key_id(KEY_A)}.AAAA", "plain whsec_x"]
)
def test_needs_reencrypt_for_anything_not_under_the_current_key(stored: str) -> None:
    assert SecretBox(KEY_A).needs_reencrypt(stored) is True


def _tamper(stored: str, index: int) -> str:
    version, kid, blob = stored.split(".")
    raw = bytearray(base64.b64decode(blob))
    raw[index] ^= 0x01
    return f"{version}.{kid}.{base64.b64encode(bytes(raw)).decode()}"


@pytest.mark.parametrize("index", [0, 11, 12, 20, -16, -1])
def test_any_flipped_bit_fails_authentication(index: int) -> None:
    box = SecretBox(KEY_A)
    stored = box.encrypt(SECRET, CTX)
    with pytest.raises(DecryptError, match="failed authentication"):
        box.decrypt(_tamper(stored, index), CTX)


KID = key_id(KEY_A)


@pytest.mark.parametrize(
    ("stored", "message"),
    [
        ("", "malformed"),
        ("garbage", "malformed"),
        ("v1", "malformed"),
        (f"v1.{KID}", "malformed"),
        (f"v1.{KID}.!!!!", "malformed"),
        (f"v1.{KID}.AAA", "malformed"),  # bad padding
        (f"v1.{KID}.AAAA AAAA", "malformed"),
        (f"v1.{KID}.ключ", "malformed"),
        (f"v1.{KID}.", "malformed"),  # no nonce at all
        (f"v1.{KID}." + base64.b64encode(b"\x00" * 5).decode(), "malformed"),
        (f"v1.{KID}." + base64.b64encode(b"\x00" * 11).decode(), "malformed"),
        (f"v1.{KID}." + base64.b64encode(b"\x00" * 27).decode(), "malformed"),  # no room for tag
        (f"v1.{KID}." + base64.b64encode(b"\x00" * 28).decode(), "failed authentication"),
        (f"v1.{KID}." + base64.b64encode(b"\x00" * 60).decode(), "failed authentication"),
        ("v1.00000000." + base64.b64encode(b"\x00" * 60).decode(), "unknown key"),
        (f"v2.{KID}." + base64.b64encode(b"\x00" * 60).decode(), "unknown key"),
        (f"V1.{KID}." + base64.b64encode(b"\x00" * 60).decode(), "unknown key"),
    ],
)
def test_malformed_stored_values_raise_decrypt_error(stored: str, message: str) -> None:
    with pytest.raises(DecryptError, match=message):
        SecretBox(KEY_A).decrypt(stored, CTX)


def test_decrypt_error_never_contains_the_stored_value() -> None:
    box = SecretBox(KEY_A)
    stored = box.encrypt(SECRET, CTX)
    with pytest.raises(DecryptError) as info:
        box.decrypt(stored, "secret:other")
    assert stored.split(".")[2] not in str(info.value)
