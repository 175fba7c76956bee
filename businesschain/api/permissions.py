"""Who may read what: regulators (group `regulators` or superusers) read the supervision API;
a business chain reads what concerns itself."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AnonymousUser
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from businesschain.models import ChainToken

REGULATOR_GROUP = "regulators"


def is_regulator(user: Any) -> bool:
    if user is None or isinstance(user, AnonymousUser) or not getattr(user, "is_authenticated", False):
        return False
    if getattr(user, "is_superuser", False):
        return True
    return bool(user.groups.filter(name=REGULATOR_GROUP).exists())


class IsRegulator(BasePermission):
    message = "Only regulators may read the supervision API."

    def has_permission(self, request: Request, view: Any) -> bool:
        return is_regulator(request.user)


class IsRegulatorOrOwnChain(BasePermission):
    """Regulators, or the chain named by the URL's `chain` argument with its own key."""

    message = "Only regulators or the chain itself may read this."

    def has_permission(self, request: Request, view: Any) -> bool:
        if isinstance(request.auth, ChainToken):
            return request.auth.chain_id == view.kwargs.get("chain")
        return is_regulator(request.user)


class IsAuthenticatedParty(BasePermission):
    """Any regulator or any registered chain (supervision-chain blocks are public to both)."""

    message = "Authentication required."

    def has_permission(self, request: Request, view: Any) -> bool:
        return isinstance(request.auth, ChainToken) or is_regulator(request.user)
