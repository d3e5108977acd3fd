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

# Documented limits of each service's incoming webhooks.
SLACK_TEXT_MAX = 3000  # a section block's text
SLACK_FALLBACK_MAX = 4000
DISCORD_CONTENT_MAX = 2000
DISCORD_TITLE_MAX = 256
DISCORD_DESCRIPTION_MAX = 4096
DISCORD_FIELD_NAME_MAX = 256
DISCORD_FIELD_VALUE_MAX = 1024
DISCORD_FIELDS_MAX = 25

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


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


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
            {"type": "section", "text": {"type": "mrkdwn", "text": _clip(text, SLACK_TEXT_MAX)}}
        ]
        if fields:
            blocks.append(
                {
                    "type": "section",
                    "fields": [
                        {"type": "mrkdwn", "text": _clip(f"*{name}*\n{value}", 2000)}
                        for name, value in fields[:10]
                    ],
                }
            )
        blocks.append(
            {
                "type": "context",
                "elements": [
                    {
                        "type": "mrkdwn",
                        "text": f"{event['type']} · {event['id']} · {event['created']}",
                    }
                ],
            }
        )
        return {"text": _clip(text, SLACK_FALLBACK_MAX), "blocks": blocks}

    @staticmethod
    def _discord(
        title: str, text: str, fields: list[tuple[str, str]], event: dict[str, Any]
    ) -> dict[str, Any]:
        embed: dict[str, Any] = {
            "title": _clip(title, DISCORD_TITLE_MAX),
            "description": _clip(text, DISCORD_DESCRIPTION_MAX),
            "timestamp": event["created"],
            "footer": {"text": f"{event['type']} · {event['id']}"},
            "fields": [
                {
                    "name": _clip(name, DISCORD_FIELD_NAME_MAX),
                    "value": _clip(value or "—", DISCORD_FIELD_VALUE_MAX),
                    "inline": "\n" not in value,
                }
                for name, value in fields[:DISCORD_FIELDS_MAX]
            ],
        }
        return {
            "content": _clip(text, DISCORD_CONTENT_MAX),
            "embeds": [embed],
            "allowed_mentions": {"parse": []},
        }
