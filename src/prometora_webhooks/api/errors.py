"""Every error becomes the contract's envelope, here and nowhere else."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, ProgrammingError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from ..domain.errors import AppError, RateLimited

log = logging.getLogger("prometora_webhooks.api")

_HTTP_CODES = {
    400: "validation_error",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "validation_error",
    422: "validation_error",
    429: "rate_limited",
}


def envelope(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": code, "message": message}}, status_code=status, headers=headers
    )


def _describe_validation(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors()[:3]:
        loc = [str(p) for p in err.get("loc", ()) if p != "body"]
        where = ".".join(loc)
        msg = str(err.get("msg", "invalid"))
        if err.get("type") == "json_invalid":
            return "request body is not valid JSON"
        if err.get("type") == "missing":
            msg = "field required"
        if err.get("type") == "extra_forbidden":
            msg = "unknown field"
        parts.append(f"{where}: {msg}" if where else msg)
    return "; ".join(parts) or "invalid request"


def _allowed_methods(request: Request) -> str:
    """Every method the path supports (Starlette names only the first matching route's)."""
    allowed = []
    for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
        scope = {**request.scope, "method": method}
        if any(r.matches(scope)[0] is Match.FULL for r in request.app.router.routes):
            allowed.append(method)
    return ", ".join(allowed)


def install(app: FastAPI) -> None:
    @app.exception_handler(AppError)
    async def _app_error(_: Request, exc: AppError) -> JSONResponse:
        headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, RateLimited) else None
        return envelope(exc.status, exc.code, exc.message, headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return envelope(422, "validation_error", _describe_validation(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400:  # e.g. FastAPI's "error parsing the body" (too deeply nested)
            return envelope(422, "validation_error", "request body could not be parsed as JSON")
        code = _HTTP_CODES.get(exc.status_code, "error")
        message = exc.detail if isinstance(exc.detail, str) else code
        headers = dict(exc.headers or {})
        if exc.status_code == 404 and message == "Not Found":
            message = "no such route"
        if exc.status_code == 405:
            headers["Allow"] = _allowed_methods(request)
        return envelope(exc.status_code, code, message, headers or None)

    @app.exception_handler(DBAPIError)
    async def _database(request: Request, exc: DBAPIError) -> JSONResponse:
        if isinstance(exc, DataError):
            return envelope(422, "validation_error", "a value cannot be stored (e.g. a NUL byte)")
        if isinstance(exc, IntegrityError | ProgrammingError):
            log.exception("database error on %s %s", request.method, request.url.path)
            return envelope(500, "internal_error", "internal error")
        # Connection refused or lost, server starting up or shutting down: retryable.
        log.warning(
            "database unavailable", extra={"path": request.url.path, "error": str(exc.orig)[:200]}
        )
        return envelope(
            503, "unavailable", "database temporarily unavailable; retry", {"Retry-After": "1"}
        )

    @app.exception_handler(OSError)
    async def _connection(request: Request, exc: OSError) -> JSONResponse:
        log.warning("database unreachable", extra={"path": request.url.path, "error": repr(exc)})
        return envelope(
            503, "unavailable", "database temporarily unavailable; retry", {"Retry-After": "1"}
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return envelope(500, "internal_error", "internal error")
