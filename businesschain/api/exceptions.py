"""One DRF exception handler: `{"code", "detail", …extra}` for domain and framework errors."""

from __future__ import annotations

from typing import Any

from django.http import Http404
from rest_framework import exceptions as drf
from rest_framework.response import Response
from rest_framework.views import exception_handler

from businesschain.errors import DomainError

_DRF_CODES = {
    drf.NotAuthenticated: "not_authenticated",
    drf.AuthenticationFailed: "not_authenticated",
    drf.PermissionDenied: "permission_denied",
    drf.NotFound: "not_found",
    drf.MethodNotAllowed: "method_not_allowed",
    drf.ParseError: "invalid_json",
    drf.UnsupportedMediaType: "unsupported_media_type",
    drf.Throttled: "throttled",
    drf.ValidationError: "invalid",
}


def domain_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, DomainError):
        return Response(exc.as_json(), status=exc.http_status)
    if isinstance(exc, Http404):
        exc = drf.NotFound()
    response = exception_handler(exc, context)
    if response is None or not isinstance(exc, drf.APIException):
        return response
    code = next((c for cls, c in _DRF_CODES.items() if isinstance(exc, cls)), exc.default_code)
    if isinstance(exc, drf.ValidationError):
        response.data = {"code": code, "detail": "Invalid input.", "errors": _pointer_errors(exc.detail)}
    else:
        response.data = {"code": code, "detail": str(exc.detail)}
    if isinstance(exc, (drf.NotAuthenticated, drf.AuthenticationFailed)):
        response.status_code = 401
    return response


def _pointer_errors(detail: Any, prefix: str = "") -> list[dict[str, str]]:
    """Flatten DRF's nested error dict into `[{"path": <JSON pointer>, "message"}]`."""
    if isinstance(detail, dict):
        out: list[dict[str, str]] = []
        for key, value in detail.items():
            path = prefix if key == "non_field_errors" else f"{prefix}/{key}"
            out.extend(_pointer_errors(value, path))
        return out
    if isinstance(detail, list):
        if all(not isinstance(item, (dict, list)) for item in detail):
            return [{"path": prefix or "", "message": str(item)} for item in detail]
        out = []
        for index, value in enumerate(detail):
            out.extend(_pointer_errors(value, f"{prefix}/{index}"))
        return out
    return [{"path": prefix or "", "message": str(detail)}]
