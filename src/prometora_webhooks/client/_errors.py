"""The SDK's one error tree, mirroring the API's ``{"error": {"code", "message"}}`` envelope.

PrometoraError                 code, status, message
├── APIError                   an error answer from the API
│   ├── AuthenticationError    401 unauthorized
│   ├── PermissionDeniedError  403 forbidden
│   ├── PlanUpgradeRequiredError 402 plan_upgrade_required
│   ├── NotFoundError          404 not_found
│   ├── PayloadTooLargeError   413 payload_too_large
│   ├── ValidationError        422 validation_error
│   ├── RateLimitedError       429 rate_limited (``retry_after`` seconds)
│   └── ServerError            5xx (internal_error, unavailable, ...)
└── APIConnectionError         no answer: refused, reset, timed out (status None)
"""

from __future__ import annotations

from typing import Any

import httpx


class PrometoraError(Exception):
    """Base of every error the client raises."""

    code: str = "error"

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        where = f"HTTP {self.status} " if self.status is not None else ""
        return f"{where}{self.code}: {self.message}"


class APIError(PrometoraError):
    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        headers: httpx.Headers | None = None,
    ) -> None:
        super().__init__(message, code=code, status=status)
        self.headers = headers if headers is not None else httpx.Headers()


class AuthenticationError(APIError):
    code = "unauthorized"


class PermissionDeniedError(APIError):
    code = "forbidden"


class PlanUpgradeRequiredError(APIError):
    code = "plan_upgrade_required"


class NotFoundError(APIError):
    code = "not_found"


class PayloadTooLargeError(APIError):
    code = "payload_too_large"


class ValidationError(APIError):
    code = "validation_error"


class RateLimitedError(APIError):
    code = "rate_limited"

    @property
    def retry_after(self) -> float | None:
        """Seconds the API asked to wait, when it said."""
        return parse_retry_after(self.headers.get("retry-after"))


class ServerError(APIError):
    code = "internal_error"


class APIConnectionError(PrometoraError):
    code = "connection_error"


_BY_CODE: dict[str, type[APIError]] = {
    "unauthorized": AuthenticationError,
    "forbidden": PermissionDeniedError,
    "plan_upgrade_required": PlanUpgradeRequiredError,
    "not_found": NotFoundError,
    "payload_too_large": PayloadTooLargeError,
    "validation_error": ValidationError,
    "rate_limited": RateLimitedError,
}
_BY_STATUS: dict[int, type[APIError]] = {
    401: AuthenticationError,
    402: PlanUpgradeRequiredError,
    403: PermissionDeniedError,
    404: NotFoundError,
    413: PayloadTooLargeError,
    422: ValidationError,
    429: RateLimitedError,
}


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` in seconds (the API sends whole seconds; an HTTP date is not used)."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def error_from_response(response: httpx.Response) -> APIError:
    """The error an unsuccessful answer stands for (the envelope if there is one)."""
    code: str | None = None
    message = ""
    try:
        payload: Any = response.json()
    except ValueError:
        payload = None
    if isinstance(payload, dict) and isinstance(payload.get("error"), dict):
        err = payload["error"]
        code = err.get("code") if isinstance(err.get("code"), str) else None
        message = err.get("message") if isinstance(err.get("message"), str) else ""
    if not message:
        message = response.text[:200] or response.reason_phrase or "no message"
    status = response.status_code
    cls = _BY_CODE.get(code or "") or _BY_STATUS.get(status)
    if cls is None:
        cls = ServerError if status >= 500 else APIError
    return cls(message, code=code or cls.code, status=status, headers=response.headers)
