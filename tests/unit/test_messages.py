"""Slack/Discord message rendering: shapes, limits, escaping, money."""

from __future__ import annotations

import copy

import orjson
import pytest

from prometora_webhooks.domain import messages as m
from prometora_webhooks.domain.catalog import Catalog

CATALOG = Catalog.load()
RENDER = m.MessageRenderer(CATALOG)


def _body(type_: str, data: object) -> bytes:
    return orjson.dumps(
        {"id": "evt_1", "type": type_, "created": "2026-01-04T12:00:00Z", "data": data}
    )


@pytest.mark.parametrize(
    ("minor", "currency", "text"),
    [
        (9999, "usd", "$99.99"),
        (9999, "USD", "$99.99"),
        (123456789, "eur", "€1,234,567.89"),
        (500, "jpy", "¥500"),
        (1234, "cad", "12.34 CAD"),
        (1234, "kwd", "1.234 KWD"),
        (-250, "gbp", "-£2.50"),
        (0, "usd", "$0.00"),
    ],
)
def test_money_from_minor_units(minor: int, currency: str, text: str) -> None:
    assert m.money(minor, currency) == text


@pytest.mark.parametrize("event_type", CATALOG.names())
@pytest.mark.parametrize("fmt", [m.SLACK, m.DISCORD])
def test_every_catalog_example_renders_within_limits(event_type: str, fmt: str) -> None:
    out = orjson.loads(RENDER.render(fmt, _body(event_type, CATALOG.get(event_type).example)))
    if fmt == m.SLACK:
        assert isinstance(out["text"], str)
        assert out["text"]
        for block in out["blocks"]:
            assert block["type"] in {"section", "context"}
            if "text" in block:
                assert block["text"]["type"] == "mrkdwn"
                assert len(block["text"]["text"]) <= m.SLACK_TEXT_MAX
            assert len(block.get("fields", [])) <= 10
    else:
        assert 0 < len(out["content"]) <= m.DISCORD_CONTENT_MAX
        assert out["allowed_mentions"] == {"parse": []}
        (embed,) = out["embeds"]
        assert len(embed["title"]) <= m.DISCORD_TITLE_MAX
        assert len(embed["description"]) <= m.DISCORD_DESCRIPTION_MAX
        assert len(embed["fields"]) <= m.DISCORD_FIELDS_MAX
        for f in embed["fields"]:
            assert 0 < len(f["name"]) <= m.DISCORD_FIELD_NAME_MAX
            assert 0 < len(f["value"]) <= m.DISCORD_FIELD_VALUE_MAX


def test_order_message_reads_like_a_sentence() -> None:
    out = orjson.loads(
        RENDER.render(m.SLACK, _body("order.created", CATALOG.get("order.created").example))
    )
    assert out["text"] == "New order ord_xyz789 — $99.99 from John Doe, 1 item: Handmade Pottery"


def test_user_text_cannot_inject_markup_or_mentions() -> None:
    data = copy.deepcopy(CATALOG.get("order.created").example)
    data["customer"]["name"] = "<!channel> *Eve* @everyone <https://evil.example|click>"
    slack = orjson.loads(RENDER.render(m.SLACK, _body("order.created", data)))
    assert "<!channel>" not in slack["text"]
    assert "&lt;!channel&gt;" in slack["text"]
    assert "<https://evil.example" not in orjson.dumps(slack).decode()
    discord = orjson.loads(RENDER.render(m.DISCORD, _body("order.created", data)))
    assert "\\*Eve\\*" in discord["content"]
    assert discord["allowed_mentions"] == {"parse": []}


def test_long_text_is_clipped_to_the_limits() -> None:
    data = copy.deepcopy(CATALOG.get("order.created").example)
    data["items"] = [dict(data["items"][0], title="T" * 900) for _ in range(30)]
    slack = orjson.loads(RENDER.render(m.SLACK, _body("order.created", data)))
    assert len(slack["text"]) <= m.SLACK_FALLBACK_MAX
    assert all(len(b["text"]["text"]) <= m.SLACK_TEXT_MAX for b in slack["blocks"] if "text" in b)
    discord = orjson.loads(RENDER.render(m.DISCORD, _body("order.created", data)))
    assert len(discord["content"]) <= m.DISCORD_CONTENT_MAX
    assert all(len(f["value"]) <= m.DISCORD_FIELD_VALUE_MAX for f in discord["embeds"][0]["fields"])
    assert discord["content"].endswith("…")


def test_standard_format_is_the_body_untouched() -> None:
    body = _body("seller.registered", CATALOG.get("seller.registered").example)
    assert RENDER.render(m.STANDARD, body) is body
