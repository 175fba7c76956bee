"""Who may read what: regulators (group `regulators` or superusers) see the supervision API."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AnonymousUser
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

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
