"""Object ids: prefix, 26 lower-case base32 letters, the same letters as the standard library."""

from __future__ import annotations

import base64

from hypothesis import given
from hypothesis import strategies as st

from prometora_webhooks.domain import ids


@given(st.binary(min_size=16, max_size=16))
def test_b32_is_rfc4648_base32_lowercased_unpadded(raw: bytes) -> None:
    assert ids.b32(raw) == base64.b32encode(raw).decode().rstrip("=").lower()


def test_b32_edges() -> None:
    assert ids.b32(bytes(16)) == "a" * 26
    assert ids.b32(b"\xff" * 16) == "7" * 25 + "4"  # the last letter: 3 one bits, 2 zero bits (28)


def test_new_id_shape_and_uniqueness() -> None:
    made = {ids.new_id(ids.ATTEMPT) for _ in range(1000)}
    assert len(made) == 1000
    for value in made:
        prefix, raw = value.split("_")
        assert prefix == "att"
        assert len(raw) == 26
        assert set(raw) <= set("abcdefghijklmnopqrstuvwxyz234567")
        assert ids.has_prefix(value, ids.ATTEMPT)
