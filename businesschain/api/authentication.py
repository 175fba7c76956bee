"""`Authorization: Token <key>` for business chains. Keys that are not chain keys fall through to
DRF's TokenAuthentication (regulators' script tokens)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AnonymousUser
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.request import Request

from businesschain.models import ChainToken
from businesschain.registry import token_lookup


class ChainPrincipal(AnonymousUser):
    """The identity of a business chain: not a person, never a regulator."""

    def __init__(self, chain_id: str) -> None:
        super().__init__()
        self.chain_id = chain_id

    def __str__(self) -> str:
        return f"chain:{self.chain_id}"


def presented_key(request: Request) -> str | None:
    """The key of an `Authorization: Token <key>` header, whether or not it is valid."""
    parts = get_authorization_header(request).split()
    if len(parts) != 2 or parts[0].lower() != b"token":
        return None
    try:
        return parts[1].decode("ascii")
    except UnicodeDecodeError:
        return None


class ChainTokenAuthentication(BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[Any, ChainToken] | None:
        key = presented_key(request)
        if key is None:
            return None
        token = token_lookup(key)
        if token is None:
            return None
        return ChainPrincipal(token.chain_id), token

    def authenticate_header(self, request: Request) -> str:
        return "Token"


def chain_token(request: Request) -> ChainToken | None:
    return request.auth if isinstance(request.auth, ChainToken) else None


class ChainTokenScheme(OpenApiAuthenticationExtension):
    """OpenAPI description of the chain key (drf-spectacular registers subclasses on import)."""

    target_class = ChainTokenAuthentication
    name = "chainToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "apiKey", "in": "header", "name": "Authorization",
                "description": "`Token <key>` issued by `register_chain` (ECP/1 §5)."}
