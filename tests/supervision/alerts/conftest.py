"""Fixtures for alert tests: alert factory, users, an isolated channel layer per test."""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any
from unittest import mock

import pytest
from django.contrib.auth.models import Group, User

from businesschain.api.permissions import REGULATOR_GROUP
from supervision.realtime.publish import chain_status_throttle_reset
from supervision.services import AlertRaiseResult, alert_raise, severity_for

_fingerprints = itertools.count(1)


@pytest.fixture(autouse=True)
def isolated_channel_layer(settings) -> Iterator[None]:
    """A channel layer of its own (a fresh in-memory one, or the Redis pub/sub layer under a
    unique prefix when REDIS_URL is set, as in CI), and a short chain-status throttle."""
    redis_url = os.environ.get("REDIS_URL")
    if redis_url:
        settings.CHANNEL_LAYERS = {"default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [redis_url], "prefix": f"test-{uuid.uuid4().hex[:12]}"},
        }}
    else:
        settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    settings.CHAIN_STATUS_MIN_INTERVAL = 0.3
    chain_status_throttle_reset()
    yield
    chain_status_throttle_reset()


@pytest.fixture(autouse=True)
def fast_password_hashing(settings) -> None:
    """Users here are made with passwords; PBKDF2's deliberate slowness buys nothing in tests."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def shared_connection(db) -> Iterator[None]:
    """Keep websocket consumers from closing the test's connection (channels' own communicator does
    this only while it waits; deferred sends run at other times)."""
    with mock.patch("channels.db.close_old_connections", lambda: None):
        yield


@pytest.fixture
def make_alert(db) -> Callable[..., AlertRaiseResult]:
    def make(code: str = "wash_trade", **overrides: Any) -> AlertRaiseResult:
        n = next(_fingerprints)
        values: dict[str, Any] = {
            "code": code,
            "severity": severity_for(code),
            "fingerprint": f"{code}:test:{n}",
            "title_zh": f"测试告警 {n}",
            "title_en": f"Test alert {n}",
            "detail_zh": f"测试详情 {n}",
            "detail_en": f"Test detail {n}",
            "chain_id": "sse",
            "block_height": n,
            "tx_ids": [f"{n:064x}"],
            "entities": [f"ENTITY-{n}"],
            "evidence": {"n": n},
        }
        values.update(overrides)
        return alert_raise(**values)

    return make


@pytest.fixture
def other_regulator(db) -> User:
    user = User.objects.create_user("second-analyst", password="second-pass-123")
    user.groups.add(Group.objects.get_or_create(name=REGULATOR_GROUP)[0])
    return user


@pytest.fixture
def outsider(db) -> User:
    """Signed in, but not a regulator."""
    return User.objects.create_user("outsider", password="outsider-pass-123")
