"""The application's routes, read from the app itself (so a test over "every route" cannot
miss one added later)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from fastapi import FastAPI


@dataclass(frozen=True)
class RouteInfo:
    method: str
    path: str  # the template, e.g. "/v1/endpoints/{endpoint_id}"
    dependencies: frozenset[Callable[..., Any]]  # every dependency, however deep
    has_body: bool

    @property
    def params(self) -> list[str]:
        return [part[1:-1] for part in self.path.split("/") if part.startswith("{")]


def app_without_runtime() -> FastAPI:
    """The real application factory, given only what it reads while building the routes."""
    from prometora_webhooks.api.app import create_app

    settings = SimpleNamespace(rate_limit=0, rate_limit_burst=0)
    return create_app(SimpleNamespace(settings=settings))  # type: ignore[arg-type]


def _calls(dependant: Any) -> Iterator[Callable[..., Any]]:
    for sub in getattr(dependant, "dependencies", ()):
        if sub.call is not None:
            yield sub.call
        yield from _calls(sub)


def _flatten(routes: Sequence[Any]) -> Iterator[Any]:
    for route in routes:
        contexts = getattr(route, "effective_route_contexts", None)
        if contexts is not None:  # FastAPI's lazily included routers
            yield from contexts()
        elif hasattr(route, "dependant"):
            yield route


def api_routes(app: FastAPI | None = None) -> list[RouteInfo]:
    """Every (method, path) the app answers with a FastAPI handler (not static mounts)."""
    app = app or app_without_runtime()
    found: dict[tuple[str, str], RouteInfo] = {}
    for route in _flatten(app.routes):
        deps = frozenset(_calls(route.dependant))
        has_body = getattr(route, "body_field", None) is not None
        for method in sorted(route.methods or ()):
            if method == "HEAD":
                continue
            found[(method, route.path)] = RouteInfo(method, route.path, deps, has_body)
    return sorted(found.values(), key=lambda r: (r.path, r.method))
