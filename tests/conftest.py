"""Shared fixtures. Imports of Django models stay inside fixtures so pure-module tests also run
without Django (`pytest tests/gm -p no:django --noconftest` is not needed)."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture(autouse=True)
def _fast_password_hasher(request: pytest.FixtureRequest) -> None:
    """PBKDF2 costs ~0.3 s per test user; tests do not need its strength."""
    if request.config.pluginmanager.hasplugin("django"):
        request.getfixturevalue("settings").PASSWORD_HASHERS = [
            "django.contrib.auth.hashers.MD5PasswordHasher"
        ]


@pytest.fixture(autouse=True)
def _forget_known_identifiers(request: pytest.FixtureRequest) -> None:
    """Test data is rolled back, so identifiers one test stored must not count as known in the next,
    and a structure cached from one test's chains must not stand for the next test's chains at the
    same heights."""
    if request.config.pluginmanager.hasplugin("django"):
        from businesschain.ingest import forget_known_identifiers
        from supervision.penetration import clear_structure_cache

        forget_known_identifiers()
        clear_structure_cache()


@pytest.fixture
def regulator(db: Any) -> Any:
    from django.contrib.auth.models import Group, User

    from businesschain.api.permissions import REGULATOR_GROUP

    user = User.objects.create_user("analyst", password="analyst-pass-123")
    group, _ = Group.objects.get_or_create(name=REGULATOR_GROUP)
    user.groups.add(group)
    return user


@pytest.fixture
def regulator_client(client: Any, regulator: Any) -> Any:
    client.force_login(regulator)
    return client
