"""Every API operation as data (method, path, body, how to read the answer), and the retry rules.

The sync and async clients only carry these out, so the two cannot drift apart.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx

from ._errors import APIConnectionError, APIError, error_from_response, parse_retry_after
from ._models import (
    Attempt,
    DashboardLink,
    Endpoint,
    Event,
    EventType,
    Json,
    Page,
    Queued,
    Store,
)

T = TypeVar("T")
I = TypeVar("I", Endpoint, Attempt)  # noqa: E741 - an item of a list


class Retry(Enum):
    """When a call may be sent again after a failure."""

    SAFE = "safe"
    """Idempotent (GET, PATCH, DELETE, publish with its key): retry 429, 5xx and lost answers."""
    UNSENT = "unsent"
    """Not idempotent: retry only when the server cannot have acted (429, failed to connect)."""


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    method: str
    path: str
    parse: Callable[[httpx.Response], T]
    retry: Retry
    params: dict[str, str | int] = field(default_factory=dict)
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    missing_ok_on_retry: bool = False
    """A DELETE whose first try may have landed: a 404 on a retry means done."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How many times and how long to wait (exponential backoff with jitter, or Retry-After)."""

    max_retries: int = 3
    backoff: float = 0.5
    """First delay in seconds; doubles per retry, up to ``max_backoff``, each jittered -50 %."""
    max_backoff: float = 8.0
    max_retry_after: float = 60.0
    """A longer ``Retry-After`` is not waited for: the error is raised at once."""

    def backoff_delay(self, retry: int) -> float:
        delay: float = min(self.max_backoff, self.backoff * 2.0**retry)
        return delay * random.uniform(0.5, 1.0)

    def delay(
        self,
        call: Call[Any],
        retry: int,
        response: httpx.Response | None,
        error: httpx.TransportError | None,
    ) -> float | None:
        """Seconds to wait before retry number ``retry`` (0-based), or None to stop."""
        if retry >= self.max_retries:
            return None
        if error is not None:
            unsent = isinstance(
                error, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout
            )
            if unsent or call.retry is Retry.SAFE:
                return self.backoff_delay(retry)
            return None
        assert response is not None
        status = response.status_code
        # The rate limit answers before the route runs: safe to repeat any call.
        retryable = status == 429 or (status >= 500 and call.retry is Retry.SAFE)
        if not retryable:
            return None
        asked = parse_retry_after(response.headers.get("retry-after"))
        if asked is None:
            return self.backoff_delay(retry)
        if asked > self.max_retry_after:
            return None
        return max(asked, 0.05 if status == 429 else self.backoff_delay(retry))


# -- how answers are read --------------------------------------------------------------------


def _json(response: httpx.Response) -> Json:
    payload = response.json()
    if not isinstance(payload, dict):
        raise ValueError("expected a JSON object")
    return payload


def _one(model: Callable[[Json], T]) -> Callable[[httpx.Response], T]:
    return lambda r: model(_json(r))


def _page(model: Callable[[Json], I]) -> Callable[[httpx.Response], Page[I]]:
    def parse(r: httpx.Response) -> Page[I]:
        payload = _json(r)
        items = [model(d) for d in payload["data"]]
        has_more = bool(payload.get("has_more", False))
        cursor = items[-1].id if has_more and items else None
        return Page(data=items, has_more=has_more, next_cursor=cursor)

    return parse


def _nothing(_: httpx.Response) -> None:
    return None


def _event(r: httpx.Response) -> Event:
    return Event.from_json(_json(r), replayed=r.headers.get("idempotent-replayed") == "true")


def _secret(r: httpx.Response) -> str:
    return str(_json(r)["secret"])


def _event_types(r: httpx.Response) -> list[EventType]:
    return [EventType.from_json(d) for d in _json(r)["data"]]


# -- the operations ---------------------------------------------------------------------------


def _seg(value: str) -> str:
    """One path segment: an id can never reach another route."""
    return quote(value, safe="")


def _scoped(store_id: str | None, **params: str | int | None) -> dict[str, str | int]:
    out = {k: v for k, v in params.items() if v is not None}
    if store_id is not None:
        out["store_id"] = store_id
    return out


def _time(value: datetime | str) -> str:
    if isinstance(value, str):
        return value
    if value.tzinfo is None:
        raise ValueError("since must be timezone-aware")
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def create_store(name: str, plan: str) -> Call[Store]:
    body = {"name": name, "plan": plan}
    return Call("POST", "/v1/stores", _one(Store.from_json), Retry.UNSENT, body=body)


def get_store(store_id: str) -> Call[Store]:
    return Call("GET", f"/v1/stores/{_seg(store_id)}", _one(Store.from_json), Retry.SAFE)


def update_store(store_id: str, name: str | None, plan: str | None) -> Call[Store]:
    body = {k: v for k, v in (("name", name), ("plan", plan)) if v is not None}
    path = f"/v1/stores/{_seg(store_id)}"
    return Call("PATCH", path, _one(Store.from_json), Retry.SAFE, body=body)


def rotate_api_key(store_id: str) -> Call[Store]:
    path = f"/v1/stores/{_seg(store_id)}/api-key/rotate"
    return Call("POST", path, _one(Store.from_json), Retry.UNSENT)


def dashboard_link(store_id: str) -> Call[DashboardLink]:
    path = f"/v1/stores/{_seg(store_id)}/dashboard-links"
    return Call("POST", path, _one(DashboardLink.from_json), Retry.UNSENT)


def publish(store_id: str, type_: str, data: Any, idempotency_key: str | None) -> Call[Event]:
    """With no key given, one is made here, so every retry of this call is the same publish."""
    key = idempotency_key if idempotency_key is not None else f"sdk-{uuid.uuid4()}"
    return Call(
        "POST",
        f"/v1/stores/{_seg(store_id)}/events",
        _event,
        Retry.SAFE,
        body={"type": type_, "data": data},
        headers={"Idempotency-Key": key},
    )


def event_types() -> Call[list[EventType]]:
    return Call("GET", "/v1/event-types", _event_types, Retry.SAFE)


def create_endpoint(
    store_id: str | None,
    url: str,
    events: Sequence[str],
    description: str | None,
    format: str | None,
    headers: Mapping[str, str] | None,
) -> Call[Endpoint]:
    body: Json = {"url": url, "events": list(events)}
    if description is not None:
        body["description"] = description
    if format is not None:
        body["format"] = format
    if headers is not None:
        body["headers"] = dict(headers)
    return Call(
        "POST",
        "/v1/endpoints",
        _one(Endpoint.from_json),
        Retry.UNSENT,
        params=_scoped(store_id),
        body=body,
    )


def list_endpoints(
    store_id: str | None, limit: int | None, starting_after: str | None
) -> Call[Page[Endpoint]]:
    params = _scoped(store_id, limit=limit, starting_after=starting_after)
    return Call("GET", "/v1/endpoints", _page(Endpoint.from_json), Retry.SAFE, params=params)


def get_endpoint(store_id: str | None, endpoint_id: str) -> Call[Endpoint]:
    path = f"/v1/endpoints/{_seg(endpoint_id)}"
    return Call("GET", path, _one(Endpoint.from_json), Retry.SAFE, params=_scoped(store_id))


def update_endpoint(store_id: str | None, endpoint_id: str, changes: Json) -> Call[Endpoint]:
    return Call(
        "PATCH",
        f"/v1/endpoints/{_seg(endpoint_id)}",
        _one(Endpoint.from_json),
        Retry.SAFE,
        params=_scoped(store_id),
        body=changes,
    )


def delete_endpoint(store_id: str | None, endpoint_id: str) -> Call[None]:
    return Call(
        "DELETE",
        f"/v1/endpoints/{_seg(endpoint_id)}",
        _nothing,
        Retry.SAFE,
        params=_scoped(store_id),
        missing_ok_on_retry=True,
    )


def get_secret(store_id: str | None, endpoint_id: str) -> Call[str]:
    path = f"/v1/endpoints/{_seg(endpoint_id)}/secret"
    return Call("GET", path, _secret, Retry.SAFE, params=_scoped(store_id))


def rotate_secret(store_id: str | None, endpoint_id: str) -> Call[str]:
    path = f"/v1/endpoints/{_seg(endpoint_id)}/secret/rotate"
    return Call("POST", path, _secret, Retry.UNSENT, params=_scoped(store_id))


def list_deliveries(
    store_id: str | None, endpoint_id: str, limit: int | None, starting_after: str | None
) -> Call[Page[Attempt]]:
    return Call(
        "GET",
        f"/v1/endpoints/{_seg(endpoint_id)}/deliveries",
        _page(Attempt.from_json),
        Retry.SAFE,
        params=_scoped(store_id, limit=limit, starting_after=starting_after),
    )


def send_test(store_id: str | None, endpoint_id: str, type_: str) -> Call[Queued]:
    return Call(
        "POST",
        f"/v1/endpoints/{_seg(endpoint_id)}/test",
        _one(Queued.from_json),
        Retry.UNSENT,
        params=_scoped(store_id),
        body={"type": type_},
    )


def resend(store_id: str | None, endpoint_id: str, event_id: str) -> Call[Queued]:
    return Call(
        "POST",
        f"/v1/endpoints/{_seg(endpoint_id)}/events/{_seg(event_id)}/resend",
        _one(Queued.from_json),
        Retry.UNSENT,
        params=_scoped(store_id),
    )


def _queued_count(r: httpx.Response) -> int:
    return int(_json(r).get("queued", 0))


def recover(store_id: str | None, endpoint_id: str, since: datetime | str) -> Call[int]:
    return Call(
        "POST",
        f"/v1/endpoints/{_seg(endpoint_id)}/recover",
        _queued_count,
        Retry.UNSENT,
        params=_scoped(store_id),
        body={"since": _time(since)},
    )


def endpoint_changes(
    url: str | None,
    events: Sequence[str] | None,
    description: str | None,
    format: str | None,
    headers: Mapping[str, str] | None,
    enabled: bool | None,
) -> Json:
    """A PATCH body with only the fields given."""
    changes: Json = {}
    if url is not None:
        changes["url"] = url
    if events is not None:
        changes["events"] = list(events)
    if description is not None:
        changes["description"] = description
    if format is not None:
        changes["format"] = format
    if headers is not None:
        changes["headers"] = dict(headers)
    if enabled is not None:
        changes["enabled"] = enabled
    return changes


# -- carrying a call out (shared by both clients) ----------------------------------------------


def outcome(call: Call[T], response: httpx.Response, retried: bool) -> T:
    """The call's result from a final answer, or the error it stands for."""
    deleted_already = call.missing_ok_on_retry and retried and response.status_code == 404
    if not response.is_success and not deleted_already:
        raise error_from_response(response)
    try:
        return call.parse(response)
    except (ValueError, KeyError, TypeError) as exc:
        raise APIError(
            f"unexpected response body ({exc.__class__.__name__})",
            code="invalid_response",
            status=response.status_code,
            headers=response.headers,
        ) from exc


def connection_error(exc: httpx.TransportError) -> APIConnectionError:
    detail = str(exc) or exc.__class__.__name__
    return APIConnectionError(f"{exc.__class__.__name__}: {detail}")


@dataclass(frozen=True, slots=True)
class Target:
    """Where and as whom a client calls: shared by a client and its ``with_store`` views."""

    base_url: str
    token: str = field(repr=False)
    store_id: str | None
    retries: RetryPolicy

    def url(self, call: Call[Any]) -> str:
        return self.base_url.rstrip("/") + call.path

    def headers(self, call: Call[Any]) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self.token}",
            "User-Agent": USER_AGENT,
            "Accept": "application/json",
            **call.headers,
        }

    def scope(self, store_id: str | None) -> str | None:
        return store_id if store_id is not None else self.store_id


def _user_agent() -> str:
    from .. import __version__

    return f"prometora-webhooks-python/{__version__}"


USER_AGENT = _user_agent()
