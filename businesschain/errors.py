"""The one error tree. Every refusal the product makes is a DomainError with a spec'd code.

The DRF exception handler (businesschain.api.exceptions) renders `{"code", "detail", **extra}`
with `http_status`, exactly as ECP/1 §5 and the supervision API describe.
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    http_status: int = 400
    default_code: str = "invalid"

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None,
                 **extra: Any) -> None:
        super().__init__(message)
        self.code = code or self.default_code
        self.message = message
        self.extra = extra
        if status is not None:
            self.http_status = status

    def as_json(self) -> dict[str, Any]:
        return {"code": self.code, "detail": self.message, **self.extra}


class InvalidInput(DomainError):
    http_status = 400
    default_code = "invalid"


class NotAuthenticated(DomainError):
    http_status = 401
    default_code = "not_authenticated"


class NotFound(DomainError):
    http_status = 404
    default_code = "not_found"


class PermissionDenied(DomainError):
    http_status = 403
    default_code = "permission_denied"


class Conflict(DomainError):
    http_status = 409
    default_code = "conflict"


class Unprocessable(DomainError):
    http_status = 422
    default_code = "unprocessable"


class TooLarge(DomainError):
    http_status = 413
    default_code = "too_large"
