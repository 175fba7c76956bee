"""Shared fixtures."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User

from businesschain.api.permissions import REGULATOR_GROUP


@pytest.fixture
def regulator(db) -> User:
    user = User.objects.create_user("analyst", password="analyst-pass-123")  # noqa: S106
    group, _ = Group.objects.get_or_create(name=REGULATOR_GROUP)
    user.groups.add(group)
    return user


@pytest.fixture
def regulator_client(client, regulator):
    client.force_login(regulator)
    return client
