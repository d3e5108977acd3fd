"""Slack/Discord message rendering: shapes, limits, escaping, money."""

from __future__ import annotations

import copy
import dataclasses
import re
from typing import Any

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


def u16(text: str) -> int:
    """Length as the services may count it: UTF-16 code units (≥ characters)."""
    return len(text.encode("utf-16-le")) // 2


def embeds_total(message: dict[str, Any]) -> int:
    """Discord's 6000 total: title, description, field names and values, footer, author."""
    total = 0
    for e in message["embeds"]:
        total += u16(e.get("title", "")) + u16(e.get("description", ""))
        total += u16(e.get("footer", {}).get("text", "")) + u16(e.get("author", {}).get("name", ""))
        total += sum(u16(f["name"]) + u16(f["value"]) for f in e.get("fields", []))
    return total


def assert_slack_within_limits(out: dict[str, Any]) -> None:
    assert isinstance(out["text"], str)
    assert out["text"]
    assert u16(out["text"]) <= min(m.SLACK_MESSAGE_TEXT_MAX, m.SLACK_FALLBACK_MAX)
    assert 0 < len(out["blocks"]) <= 50
    for block in out["blocks"]:
        assert block["type"] in {"section", "context"}
        if "text" in block:
            assert block["text"]["type"] == "mrkdwn"
            assert 0 < u16(block["text"]["text"]) <= 3000
        assert len(block.get("fields", [])) <= 10
        for f in block.get("fields", []):
            assert 0 < u16(f["text"]) <= 2000
        assert len(block.get("elements", [])) <= 10
        for el in block.get("elements", []):
            assert 0 < u16(el["text"]) <= 3000
    for text in _slack_texts(out):
        # every & is the start of an entity: a clipped text never ends in half of one
        assert re.fullmatch(r"(?:[^&]|&(?:amp|lt|gt);)*(?:…)?", text, re.S), text[-40:]


def _slack_texts(out: dict[str, Any]) -> list[str]:
    texts = [out["text"]]
    for block in out["blocks"]:
        if "text" in block:
            texts.append(block["text"]["text"])
        texts += [f["text"] for f in block.get("fields", [])]
        texts += [el["text"] for el in block.get("elements", [])]
    return texts


def assert_discord_within_limits(out: dict[str, Any]) -> None:
    assert 0 < u16(out["content"]) <= 2000
    assert u16(out["content"]) <= m.DISCORD_SUMMARY_MAX
    assert "\n" not in out["content"], "content is a one-line summary"
    assert out["allowed_mentions"] == {"parse": []}
    (embed,) = out["embeds"]
    assert embed.get("description") != out["content"], "the same text is not shown twice"
    assert 0 < u16(embed["title"]) <= 256
    assert u16(embed.get("description", "")) <= 4096
    assert u16(embed["footer"]["text"]) <= 2048
    assert len(embed["fields"]) <= 25
    for f in embed["fields"]:
        assert 0 < u16(f["name"]) <= 256
        assert 0 < u16(f["value"]) <= 1024
    assert embeds_total(out) <= 6000
    for text in [out["content"], embed["title"], embed.get("description", "")] + [
        f["value"] for f in embed["fields"]
    ]:
        if text.endswith("…"):
            body = text[:-1]
            dangling = len(body) - len(body.rstrip("\\"))
            assert dangling % 2 == 0, f"a cut escape before the ellipsis: {text[-20:]!r}"


@pytest.mark.parametrize("event_type", CATALOG.names())
@pytest.mark.parametrize("fmt", [m.SLACK, m.DISCORD])
def test_every_catalog_example_renders_within_limits(event_type: str, fmt: str) -> None:
    out = orjson.loads(RENDER.render(fmt, _body(event_type, CATALOG.get(event_type).example)))
    if fmt == m.SLACK:
        assert_slack_within_limits(out)
    else:
        assert_discord_within_limits(out)


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
    # the summary was shortened, so the embed carries the text as its description
    assert discord["embeds"][0]["description"].startswith(discord["content"][:-1])
    assert_slack_within_limits(slack)
    assert_discord_within_limits(discord)


def test_standard_format_is_the_body_untouched() -> None:
    body = _body("seller.registered", CATALOG.get("seller.registered").example)
    assert RENDER.render(m.STANDARD, body) is body


def test_discord_content_is_a_summary_not_a_repeat_of_the_embed() -> None:
    out = orjson.loads(
        RENDER.render(m.DISCORD, _body("order.created", CATALOG.get("order.created").example))
    )
    sentence = "New order ord\\_xyz789 — $99.99 from John Doe, 1 item: Handmade Pottery"
    assert out["content"] == sentence
    (embed,) = out["embeds"]
    assert "description" not in embed, "the description would repeat the content"
    assert embed["title"] == "New order ord\\_xyz789"
    assert [f["name"] for f in embed["fields"]] == ["Customer", "Total", "Items"]
    assert "John Doe (john@example.com)" in embed["fields"][0]["value"]

    # a multi-line text: the content is its one-line form, the description the text itself
    data = copy.deepcopy(CATALOG.get("order.created").example)
    data["customer"]["name"] = "John\nDoe"
    out = orjson.loads(RENDER.render(m.DISCORD, _body("order.created", data)))
    assert "from John Doe," in out["content"]
    assert "from John\nDoe," in out["embeds"][0]["description"]


def schema_maximum_order(title_char: str = "*", items: int = 200) -> dict[str, Any]:
    """An order.created at the schema's maximum lengths, full of characters that escape."""
    return {
        "id": "_" * 255,
        "total": 10**15,
        "currency": "usd",
        "customer": {"email": ("<&>" * 107)[:320], "name": "*_~`|>#[]()<&>@" * 33 + "@@@@@"},
        "items": [
            {
                "listing_id": "l" * 255,
                "title": (title_char * 1000),
                "quantity": 10**6,
                "price": 10**12,
            }
            for _ in range(items)
        ],
    }


@pytest.mark.parametrize("title_char", ["*", "x", "😀", "&"])
def test_schema_maximum_order_stays_within_every_documented_limit(title_char: str) -> None:
    data = schema_maximum_order(title_char)
    CATALOG.validate("order.created", data)  # really the schema's maximum, still valid
    assert len(data["customer"]["name"]) == 500
    assert len(data["customer"]["email"]) == 320
    body = _body("order.created", data)
    slack = orjson.loads(RENDER.render(m.SLACK, body))
    assert_slack_within_limits(slack)
    discord = orjson.loads(RENDER.render(m.DISCORD, body))
    assert_discord_within_limits(discord)
    (embed,) = discord["embeds"]
    # trimmed for the total: the fields first, with an ellipsis, the description kept whole
    assert embeds_total(discord) > 6000 - 100, "the budget is used, not thrown away"
    assert embed["fields"][-1]["value"].endswith("…")
    assert u16(embed["fields"][-1]["value"]) < 1024
    assert embed["description"].endswith("…")
    assert u16(embed["description"]) >= 4096 - 2, "the description is not cut for the total"
    assert [f["name"] for f in embed["fields"]] == ["Customer", "Total", "Items"]


def _custom_renderer(fields: list[dict[str, str]]) -> m.MessageRenderer:
    base = CATALOG.get("seller.registered")
    message = {"title": "{{ data.name }}", "text": "{{ data.email }}", "fields": fields}
    return m.MessageRenderer(Catalog([dataclasses.replace(base, message=message)]))


def test_description_is_trimmed_after_the_fields_are() -> None:
    """25 fields trimmed to their floor still leave too much: the description gives way."""
    render = _custom_renderer([{"name": f"Field {i:02d} " + "n" * 10, "value": "{{ data.id }}"}
                               for i in range(25)])  # fmt: skip
    data = {"id": "v" * 255, "name": "T" * 500, "email": "d" * 5000}
    out = orjson.loads(render.render(m.DISCORD, _body("seller.registered", data)))
    assert_discord_within_limits(out)
    (embed,) = out["embeds"]
    assert len(embed["fields"]) == 25
    assert all(u16(f["value"]) == m.MIN_FIELD_VALUE for f in embed["fields"])
    assert embed["description"].endswith("…")
    assert 1000 < u16(embed["description"]) < 4096 - 100
    assert embeds_total(out) == 6000


def test_fields_are_dropped_when_nothing_else_can_give() -> None:
    render = _custom_renderer([{"name": "N" * 300, "value": "{{ data.id }}"}] * 25)
    data = {"id": "v" * 255, "name": "T" * 500, "email": "d" * 5000}
    out = orjson.loads(render.render(m.DISCORD, _body("seller.registered", data)))
    assert_discord_within_limits(out)
    assert 0 < len(out["embeds"][0]["fields"]) < 25
