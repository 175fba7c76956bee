"""`/ws/alerts/`: live alerts and chain status for signed-in regulators (supervision API §1).

Thin: the only database work is the regulator and person-identifier permission check at connect;
events arrive ready-made from the channel layer (supervision.realtime.publish) and are passed on
unchanged.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from businesschain.api.permissions import is_regulator
from businesschain.protocol.identifiers import is_chain_id
from supervision.penetration import can_see_person_ids
from supervision.realtime.events import (
    ALL_GROUP,
    AlertCreatedEvent,
    AlertUpdatedEvent,
    ChainStatusEvent,
    audience_group,
    chain_group,
)

CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_BAD_REQUEST = 4400


class AlertsConsumer(AsyncJsonWebsocketConsumer):
    """Joins `alerts.all`, or only `alerts.chain.<id>` with `?chain=<id>`; the `.unmasked` twin of
    that group when the user may see person identifiers (decided at connect: a permission granted
    or withdrawn later applies from the next connection). Refusals accept the handshake first and
    then close, so that browsers see the close code: 4401 without a session, 4403 for a user who
    is not a regulator, 4400 for a malformed `chain` parameter."""

    joined: tuple[str, ...] = ()

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self._refuse(CLOSE_UNAUTHENTICATED)
            return
        regulator, unmasked = await database_sync_to_async(_access)(user)
        if not regulator:
            await self._refuse(CLOSE_FORBIDDEN)
            return
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        chain = (query.get("chain") or [""])[0]
        if chain and not is_chain_id(chain):
            await self._refuse(CLOSE_BAD_REQUEST)
            return
        self.joined = (audience_group(chain_group(chain) if chain else ALL_GROUP, unmasked=unmasked),)
        for group in self.joined:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.accept()

    async def _refuse(self, code: int) -> None:
        await self.accept()
        await self.close(code=code)

    async def disconnect(self, code: int) -> None:
        for group in self.joined:
            await self.channel_layer.group_discard(group, self.channel_name)
        self.joined = ()

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None,
                      **kwargs: Any) -> None:
        """The stream is one-way; whatever a client sends is ignored."""

    # --- channel-layer events (catalogue: supervision.realtime.events) -----------------------

    async def alert_created(self, event: AlertCreatedEvent) -> None:
        await self.send_json({"type": "alert.created", "alert": event["alert"]})

    async def alert_updated(self, event: AlertUpdatedEvent) -> None:
        await self.send_json({"type": "alert.updated", "alert": event["alert"]})

    async def chain_status(self, event: ChainStatusEvent) -> None:
        await self.send_json({"type": "chain.status", "chain": event["chain"]})

    @classmethod
    async def encode_json(cls, content: Any) -> str:
        return json.dumps(content, ensure_ascii=False, separators=(",", ":"))


def _access(user: Any) -> tuple[bool, bool]:
    """(is a regulator, may see person identifiers)."""
    regulator = is_regulator(user)
    return regulator, regulator and can_see_person_ids(user)
