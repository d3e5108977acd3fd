"""Chat-message formats: the event rendered as a Slack or Discord incoming-webhook message.

Templates live with the event catalog (one per type). They run in Jinja's sandbox; every
value they print is escaped for the target's markup, so a customer named ``<!channel>`` or
``@everyone`` is shown, not obeyed. Money is formatted from minor units and the currency.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson
from jinja2.sandbox import SandboxedEnvironment

from .catalog import Catalog

STANDARD = "standard"
SLACK = "slack"
DISCORD = "discord"
FORMATS = (STANDARD, SLACK, DISCORD)

# Documented limits of each service's incoming webhooks. Lengths are measured in UTF-16 code
# units (``units``), never fewer than the characters the services count, so staying within
# them in units stays within them however the service counts.
SLACK_TEXT_MAX = 3000  # a section block's text (also each context element's)
SLACK_FIELD_TEXT_MAX = 2000  # each of a section's fields
SLACK_FIELDS_MAX = 10  # fields in one section
SLACK_BLOCKS_MAX = 50
SLACK_MESSAGE_TEXT_MAX = 40000  # top-level text: Slack truncates beyond this
SLACK_FALLBACK_MAX = 4000  # what we send as top-level text (the notification fallback)
DISCORD_CONTENT_MAX = 2000
DISCORD_SUMMARY_MAX = 200  # our one-line ``content``: the notification preview
DISCORD_TITLE_MAX = 256
DISCORD_DESCRIPTION_MAX = 4096
DISCORD_FIELD_NAME_MAX = 256
DISCORD_FIELD_VALUE_MAX = 1024
DISCORD_FIELDS_MAX = 25
DISCORD_FOOTER_MAX = 2048
DISCORD_AUTHOR_MAX = 256
# title + description + field names and values + footer text + author name, over all embeds
DISCORD_EMBEDS_TOTAL_MAX = 6000
ELLIPSIS = "…"

_ZERO_DECIMAL = frozenset(
    {
        "bif",
        "clp",
        "djf",
        "gnf",
        "jpy",
        "kmf",
        "krw",
        "mga",
        "pyg",
        "rwf",
        "ugx",
        "vnd",
        "vuv",
        "xaf",
        "xof",
        "xpf",
    }
)
_THREE_DECIMAL = frozenset({"bhd", "jod", "kwd", "omr", "tnd"})
_SYMBOLS = {"usd": "$", "eur": "€", "gbp": "£", "jpy": "¥", "inr": "₹", "krw": "₩"}


def money(minor: object, currency: object) -> str:
    """9999, "usd" → "$99.99"; 500, "jpy" → "¥500"; 1234, "cad" → "12.34 CAD"."""
    if not isinstance(minor, int) or isinstance(minor, bool) or not isinstance(currency, str):
        return str(minor)
    code = currency.lower()
    digits = 0 if code in _ZERO_DECIMAL else 3 if code in _THREE_DECIMAL else 2
    amount = Decimal(minor).scaleb(-digits)
    text = f"{abs(amount):,.{digits}f}"
    sign = "-" if minor < 0 else ""
    symbol = _SYMBOLS.get(code)
    return f"{sign}{symbol}{text}" if symbol else f"{sign}{text} {code.upper()}"


def escape_slack(value: str) -> str:
    """Slack mrkdwn control characters (&, <, >): <!channel> and links cannot be injected."""
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def escape_discord(value: str) -> str:
    """Discord markdown shown literally (mentions are disabled by ``allowed_mentions``)."""
    return "".join("\\" + ch if ch in "\\*_~`|>#[]()" else ch for ch in value)


def units(text: str) -> int:
    """Length in UTF-16 code units (a character outside the BMP, e.g. most emoji, counts 2)."""
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


def _clip(text: str, limit: int) -> str:
    """``text`` within ``limit`` units, cut with an ellipsis when it is longer."""
    if units(text) <= limit:
        return text
    if limit < 1:
        return ""
    room, cut = limit - 1, 0
    for ch in text:
        room -= 2 if ord(ch) > 0xFFFF else 1
        if room < 0:
            break
        cut += 1
    return text[:cut].rstrip() + ELLIPSIS


def _clip_slack(text: str, limit: int) -> str:
    """Like ``_clip``, never leaving half an HTML entity (``&am…``) of the escaped text."""
    clipped = _clip(text, limit)
    if clipped == text:
        return text
    head = clipped[: -len(ELLIPSIS)]
    amp = head.rfind("&")
    if amp != -1 and ";" not in head[amp:]:
        head = head[:amp]
    return head + ELLIPSIS


def _clip_discord(text: str, limit: int) -> str:
    """Like ``_clip``, never leaving a dangling escape backslash before the ellipsis."""
    clipped = _clip(text, limit)
    if clipped == text:
        return text
    head = clipped[: -len(ELLIPSIS)]
    trailing = len(head) - len(head.rstrip("\\"))
    if trailing % 2:
        head = head[:-1]
    return head + ELLIPSIS


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _embeds_total(embed: dict[str, Any]) -> int:
    """The characters Discord counts against the 6000 limit of a message's embeds."""
    total = units(embed.get("title", "")) + units(embed.get("description", ""))
    total += units(embed.get("footer", {}).get("text", ""))
    total += units(embed.get("author", {}).get("name", ""))
    return total + sum(units(f["name"]) + units(f["value"]) for f in embed.get("fields", []))


class MessageRenderer:
    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog
        self._envs = {
            SLACK: self._env(escape_slack),
            DISCORD: self._env(escape_discord),
        }

    @staticmethod
    def _env(escape: Any) -> SandboxedEnvironment:
        def finalize(value: object) -> object:
            if isinstance(value, str):
                return escape(value)
            return value

        env = SandboxedEnvironment(finalize=finalize, autoescape=False)
        env.globals["money"] = money
        return env

    def _parts(self, fmt: str, event: dict[str, Any]) -> tuple[str, str, list[tuple[str, str]]]:
        spec = self._catalog.get(event["type"]).message
        env = self._envs[fmt]
        ctx = {"data": event["data"], "event": {k: event[k] for k in ("id", "type", "created")}}

        def render(template: str) -> str:
            return env.from_string(template).render(ctx).strip()

        title = render(spec.get("title", "{{ event.type }}"))
        text = render(spec.get("text", "{{ event.type }} {{ event.id }}"))
        fields = [(render(f["name"]), render(f["value"])) for f in spec.get("fields", [])]
        return title, text, fields

    def render(self, fmt: str, body: bytes) -> bytes:
        """The request body for an endpoint of format ``fmt`` (``body`` for standard)."""
        if fmt == STANDARD:
            return body
        event = orjson.loads(body)
        title, text, fields = self._parts(fmt, event)
        if fmt == SLACK:
            return orjson.dumps(self._slack(title, text, fields, event))
        return orjson.dumps(self._discord(title, text, fields, event))

    @staticmethod
    def _slack(
        title: str, text: str, fields: list[tuple[str, str]], event: dict[str, Any]
    ) -> dict[str, Any]:
        blocks: list[dict[str, Any]] = [
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": _clip_slack(text, SLACK_TEXT_MAX)},
            }
        ]
        if fields:
            blocks.append(
                {
                    "type": "section",
                    "fields": [
                        {
                            "type": "mrkdwn",
                            "text": _clip_slack(f"*{name}*\n{value}", SLACK_FIELD_TEXT_MAX),
                        }
                        for name, value in fields[:SLACK_FIELDS_MAX]
                    ],
                }
            )
        context = f"{event['type']} · {event['id']} · {event['created']}"
        blocks.append(
            {
                "type": "context",
                "elements": [{"type": "mrkdwn", "text": _clip_slack(context, SLACK_TEXT_MAX)}],
            }
        )
        return {"text": _clip_slack(text, SLACK_FALLBACK_MAX), "blocks": blocks[:SLACK_BLOCKS_MAX]}

    @staticmethod
    def _discord(
        title: str, text: str, fields: list[tuple[str, str]], event: dict[str, Any]
    ) -> dict[str, Any]:
        """One embed (title, description, fields, footer) within every per-part limit and the
        6000-character total, and ``content``: a one-line summary for notifications. The text is
        the summary; the embed repeats it as its description only when the summary had to be
        shortened (a long or multi-line text), so the same text is never shown twice."""
        summary = _clip_discord(_one_line(text), DISCORD_SUMMARY_MAX) or _clip_discord(
            _one_line(title), DISCORD_SUMMARY_MAX
        )
        embed: dict[str, Any] = {"title": _clip_discord(title, DISCORD_TITLE_MAX)}
        description = _clip_discord(text, DISCORD_DESCRIPTION_MAX)
        if description and description != summary:
            embed["description"] = description
        embed["timestamp"] = event["created"]
        embed["footer"] = {"text": _clip(f"{event['type']} · {event['id']}", DISCORD_FOOTER_MAX)}
        embed["fields"] = [
            {
                "name": _clip_discord(name, DISCORD_FIELD_NAME_MAX) or "—",
                "value": _clip_discord(value, DISCORD_FIELD_VALUE_MAX) or "—",
                "inline": "\n" not in value,
            }
            for name, value in fields[:DISCORD_FIELDS_MAX]
        ]
        _fit_embed(embed)
        return {
            "content": summary,  # DISCORD_SUMMARY_MAX, well within DISCORD_CONTENT_MAX
            "embeds": [embed],
            "allowed_mentions": {"parse": []},
        }


MIN_FIELD_VALUE = 64  # a trimmed field keeps at least this much before fields are dropped


def _fit_embed(embed: dict[str, Any]) -> None:
    """Bring the embed within Discord's 6000-character total: shorten field values (the last
    first), then the description, then drop fields (last first); each cut ends in an ellipsis."""
    fields: list[dict[str, Any]] = embed["fields"]
    excess = _embeds_total(embed) - DISCORD_EMBEDS_TOTAL_MAX
    for f in reversed(fields):
        if excess <= 0:
            return
        size = units(f["value"])
        if size > MIN_FIELD_VALUE:
            f["value"] = _clip_discord(f["value"], max(MIN_FIELD_VALUE, size - excess))
            excess = _embeds_total(embed) - DISCORD_EMBEDS_TOTAL_MAX
    if excess > 0 and "description" in embed:
        size = units(embed["description"])
        embed["description"] = _clip_discord(embed["description"], max(1, size - excess))
        excess = _embeds_total(embed) - DISCORD_EMBEDS_TOTAL_MAX
    while excess > 0 and fields:
        fields.pop()
        excess = _embeds_total(embed) - DISCORD_EMBEDS_TOTAL_MAX
    if excess > 0:  # unreachable with today's per-part limits; kept so the total always holds
        embed.pop("description", None)
