"""Sending live events to the channel layer (payloads: supervision.realtime.events).

Only services call these, and always through `transaction.on_commit(..., robust=True)`, so a client
never hears of state that could still roll back, and a channel-layer outage never fails a write.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Iterable, Sequence
from typing import Any, cast

from asgiref.sync import SyncToAsync, async_to_sync
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings

from businesschain.models import Chain
from businesschain.selectors import chain_summary
from supervision.models import Alert
from supervision.realtime.events import (
    ALL_GROUP,
    AlertCreatedEvent,
    AlertEventType,
    AlertUpdatedEvent,
    ChainStatusEvent,
    ChainSummaryJson,
    audience_group,
    chain_group,
)
from supervision.selectors import alert_event_json, alert_mask

log = logging.getLogger(__name__)

#: Default for `settings.CHAIN_STATUS_MIN_INTERVAL`: seconds between two `chain.status` events of
#: one chain caused by accepted blocks (status changes are sent at once).
DEFAULT_CHAIN_STATUS_MIN_INTERVAL = 1.0


def _group_send(messages: Iterable[tuple[str, dict[str, Any]]]) -> None:
    """Each `(group, message)` in order, in one trip to the event loop."""
    layer = get_channel_layer()
    if layer is None:
        return

    async def send() -> None:
        for group, message in messages:
            await layer.group_send(group, message)

    async_to_sync(send)()


def publish_alert(alert: Alert, event: AlertEventType) -> None:
    """`alert.created` / `alert.updated` to `alerts.all` and the alert's chain group with person ids
    masked, and to their `.unmasked` twins with them shown (see `events` on the audiences)."""
    publish_alerts([(alert, event)])


def publish_alerts(events: Sequence[tuple[Alert, AlertEventType]]) -> None:
    """`publish_alert` for several alerts (those one analysed block raised), in order, with one
    lookup of their entities' kinds and one trip to the event loop."""
    masks = {unmasked: alert_mask([alert for alert, _ in events], reveal=unmasked)
             for unmasked in (False, True)}
    sends: list[tuple[str, dict[str, Any]]] = []
    for alert, event in events:
        groups = [ALL_GROUP] + ([chain_group(alert.chain_id)] if alert.chain_id else [])
        for unmasked in (False, True):
            payload = alert_event_json(alert, mask=masks[unmasked])
            message: AlertCreatedEvent | AlertUpdatedEvent = (
                {"type": "alert.created", "alert": payload} if event == "alert.created"
                else {"type": "alert.updated", "alert": payload}
            )
            sends += [(audience_group(g, unmasked=unmasked), dict(message)) for g in groups]
    if sends:
        _group_send(sends)


def publish_chain_status(chain_id: str, *, throttle: bool = False) -> None:
    """`chain.status` with `chain_summary(chain)` to `alerts.all` and the chain's group (both
    audiences: a chain's status names no person).

    With `throttle` (accepted blocks), at most one event per chain per interval leaves this
    process; one asked for inside the interval is deferred to its end and then carries the latest
    state. Deferring needs the server's event loop (Django under ASGI); where there is none
    (management commands, WSGI), events inside the interval are dropped and the next one outside
    it carries the state. Per process: with several workers it only reduces the frequency.
    """
    if throttle and not _THROTTLE.claim(chain_id):
        return
    _send_chain_status(chain_id)


def _send_chain_status(chain_id: str) -> None:
    chain = Chain.objects.filter(id=chain_id).first()
    if chain is None:
        return
    summary = cast(ChainSummaryJson, chain_summary(chain))
    message: ChainStatusEvent = {"type": "chain.status", "chain": summary}
    groups = [ALL_GROUP, chain_group(chain_id)]
    _group_send((audience_group(g, unmasked=u), dict(message)) for u in (False, True) for g in groups)


class _ChainStatusThrottle:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._deferred: dict[str, asyncio.AbstractEventLoop] = {}

    def reset(self) -> None:
        with self._lock:
            self._last.clear()
            self._deferred.clear()

    def claim(self, chain_id: str) -> bool:
        """True: send now. False: a deferred send will carry the state (or, without a server
        loop, the event is dropped)."""
        interval = float(getattr(settings, "CHAIN_STATUS_MIN_INTERVAL", DEFAULT_CHAIN_STATUS_MIN_INTERVAL))
        if interval <= 0:
            return True
        now = time.monotonic()
        with self._lock:
            loop = self._deferred.get(chain_id)
            if loop is not None and not loop.is_closed():
                return False  # already deferred; it reads the state when it fires
            self._deferred.pop(chain_id, None)
            last = self._last.get(chain_id)
            if last is None or now - last >= interval:
                self._last[chain_id] = now
                return True
            delay = interval - (now - last)
            loop = _server_loop()
            if loop is None:
                return False
            self._deferred[chain_id] = loop
        try:
            loop.call_soon_threadsafe(loop.call_later, delay, self._fire, chain_id)
        except RuntimeError:  # the loop closed meanwhile
            with self._lock:
                self._deferred.pop(chain_id, None)
        return False

    def _fire(self, chain_id: str) -> None:
        """On the event loop: send the chain's current state."""
        with self._lock:
            self._deferred.pop(chain_id, None)
            self._last[chain_id] = time.monotonic()
        task = asyncio.get_running_loop().create_task(self._send(chain_id))
        _TASKS.add(task)
        task.add_done_callback(_TASKS.discard)

    @staticmethod
    async def _send(chain_id: str) -> None:
        try:
            await database_sync_to_async(_send_chain_status)(chain_id)
        except Exception:
            log.exception("could not publish the status of chain %s", chain_id)


def _server_loop() -> asyncio.AbstractEventLoop | None:
    """The event loop that runs this sync code's caller (Django views under ASGI run in a
    `sync_to_async` thread), if it is alive."""
    local = SyncToAsync.threadlocal
    if getattr(local, "main_event_loop_pid", None) != os.getpid():
        return None
    loop = getattr(local, "main_event_loop", None)
    if loop is None or loop.is_closed() or not loop.is_running():
        return None
    return loop


_THROTTLE = _ChainStatusThrottle()
_TASKS: set[asyncio.Task[None]] = set()


def chain_status_throttle_reset() -> None:
    """Forget the throttle's state (tests)."""
    _THROTTLE.reset()
