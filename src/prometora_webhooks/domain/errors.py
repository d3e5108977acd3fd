"""The one error tree. Every error a user can cause is an ``AppError`` with a code and status.

AppError
├── Unauthorized        401 unauthorized
├── Forbidden           403 forbidden
├── NotFound            404 not_found
├── PlanUpgradeRequired 402 plan_upgrade_required
├── PayloadTooLarge     413 payload_too_large
├── RateLimited         429 rate_limited
└── ValidationFailed    422 validation_error
    └── UrlRejected     422 validation_error (an endpoint URL that may not be used)
"""

from __future__ import annotations


class AppError(Exception):
    code = "internal_error"
    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Unauthorized(AppError):
    code = "unauthorized"
    status = 401


class Forbidden(AppError):
    code = "forbidden"
    status = 403


class NotFound(AppError):
    code = "not_found"
    status = 404


class PlanUpgradeRequired(AppError):
    code = "plan_upgrade_required"
    status = 402


class PayloadTooLarge(AppError):
    code = "payload_too_large"
    status = 413


class RateLimited(AppError):
    code = "rate_limited"
    status = 429

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ValidationFailed(AppError):
    code = "validation_error"
    status = 422


class UrlRejected(ValidationFailed):
    pass
