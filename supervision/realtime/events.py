"""The catalogue of live-push events (supervision API §1 "Live push"): every payload the server
sends on `/ws/alerts/`, and every message the channel layer carries to `AlertsConsumer`.

Groups: `alerts.all` (every alert and every chain's status) and `alerts.chain.<chain id>` (alerts
naming that chain and its status; a client joins it with `/ws/alerts/?chain=<id>`). Each has an
`.unmasked` twin (`audience_group`) carrying the same events with person identifiers shown: a
connection joins the twin only when its user holds `supervision.view_person_identifiers`, and the
plain groups carry alerts with person ids masked. The choice is made once per connection at
connect, and each event is built once per audience at publish, so that any number of ASGI workers
pass events on unchanged and unmasked ids never reach a socket of a user who may not see them.

Channel-layer messages are the frames themselves: `{"type": "alert.created", "alert": …}` is handled
by `AlertsConsumer.alert_created` and sent on unchanged.

Language: `alert.title` and `alert.detail` are Chinese (zh-hans, the site's default language); the
English texts ride along as `title_en` and `detail_en` so an English page can switch. Apart from
these two keys, `alert` is exactly an item of `GET /api/v1/alerts` as the connection's user gets it
(same function builds both).
"""

from __future__ import annotations

from typing import Any, Literal, TypedDict

ALL_GROUP = "alerts.all"


def chain_group(chain_id: str) -> str:
    return f"alerts.chain.{chain_id}"


def audience_group(group: str, *, unmasked: bool) -> str:
    """`group` for viewers who see person ids masked, its `.unmasked` twin for those who may see them."""
    return f"{group}.unmasked" if unmasked else group


class AlertJson(TypedDict):
    """An item of `GET /api/v1/alerts`. Times are RFC 3339 UTC with `Z`."""

    id: int
    code: str
    severity: str
    status: str
    title: str
    detail: str
    chain: str | None
    block_height: int | None
    tx_ids: list[str]
    entities: list[str]
    created_at: str
    last_seen: str
    assignee: str | None  # username


# One row of an alert's history. `by` is a username (null for the system), `field` is "status",
# "assignee", "severity" or "note"; "from"/"to" are null where they do not apply. (Functional form:
# `from` is a Python keyword.)
AlertHistoryEntry = TypedDict(
    "AlertHistoryEntry",
    {"at": str, "by": str | None, "field": str, "from": str | None, "to": str | None, "note": str},
)


class AlertDetailJson(AlertJson):
    """`GET /api/v1/alerts/{id}`."""

    evidence: dict[str, Any]
    history: list[AlertHistoryEntry]


class AlertEventJson(AlertJson):
    """The alert inside a live event: the list item (Chinese texts) plus the English ones."""

    title_en: str
    detail_en: str


class AlertCreatedEvent(TypedDict):
    type: Literal["alert.created"]
    alert: AlertEventJson


class AlertUpdatedEvent(TypedDict):
    type: Literal["alert.updated"]
    alert: AlertEventJson


class ChainSummaryJson(TypedDict):
    """`businesschain.selectors.chain_summary`, i.e. ECP/1 §5 `GET chains/{chain}`."""

    chain: str
    name: str
    height: int
    head_hash: str | None
    next_height: int
    quorum: int | None
    nodes: list[dict[str, str]]
    node_set_version: int | None
    status: str
    last_block_at: str | None


class ChainStatusEvent(TypedDict):
    type: Literal["chain.status"]
    chain: ChainSummaryJson


AlertEvent = AlertCreatedEvent | AlertUpdatedEvent
LiveEvent = AlertCreatedEvent | AlertUpdatedEvent | ChainStatusEvent
AlertEventType = Literal["alert.created", "alert.updated"]
