"""Alert reads, shaped as the supervision API answers them (§1 "Alert rules").

One function builds an alert's JSON for the API and for live events (`alert_json`), so the two
never drift apart. Person identifiers in it (entities, evidence, and any inside the texts) are
masked by an `IdentifierMask` (`alert_mask`) unless the viewer may see them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, time

from django.db.models import QuerySet
from django.utils import translation
from django.utils.dateparse import parse_date, parse_datetime

from businesschain.errors import InvalidInput, NotFound
from businesschain.protocol.identifiers import is_chain_id
from businesschain.protocol.times import format_time
from supervision.models import Alert, AlertHistory
from supervision.penetration import IdentifierMask, json_strings
from supervision.realtime.events import AlertDetailJson, AlertEventJson, AlertHistoryEntry, AlertJson

#: supervision API §1: every alert code and its severity.
ALERT_SEVERITIES: dict[str, str] = {
    "fork": Alert.Severity.CRITICAL,
    "bad_signature": Alert.Severity.HIGH,
    "bad_prev_hash": Alert.Severity.HIGH,
    "chain_stalled": Alert.Severity.MEDIUM,
    "circular_holding": Alert.Severity.MEDIUM,
    "wash_trade": Alert.Severity.HIGH,
    "trade_ring": Alert.Severity.HIGH,
    "related_party_trade": Alert.Severity.MEDIUM,
    "threshold_crossing": Alert.Severity.HIGH,
    "broker_stake_limit": Alert.Severity.MEDIUM,
}
ALERT_CODES = tuple(ALERT_SEVERITIES)


@dataclass(frozen=True, slots=True)
class AlertFilters:
    """`GET alerts?code=&severity=&status=&chain=&entity=&since=`. `code`, `severity` and `status`
    take one value or several separated by commas. `since` keeps alerts seen at or after that time
    (`last_seen >= since`), which includes every alert created since."""

    codes: tuple[str, ...] = ()
    severities: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    chain: str | None = None
    entity: str | None = None
    since: datetime | None = None


def _invalid_filter(parameter: str, message: str) -> InvalidInput:
    return InvalidInput(f"{parameter}: {message}", code="invalid_filter", parameter=parameter)


def _choices(query: Mapping[str, str], name: str, allowed: tuple[str, ...]) -> tuple[str, ...]:
    raw = query.get(name)
    if raw is None or raw == "":
        return ()
    values = tuple(dict.fromkeys(v.strip() for v in raw.split(",")))
    for value in values:
        if value not in allowed:
            raise _invalid_filter(name, f"{value!r} is not one of {', '.join(allowed)}")
    return values


def _since(raw: str) -> datetime:
    moment = parse_datetime(raw.replace(" ", "+") if "T" in raw else raw)  # a '+' decoded as ' '
    if moment is None:
        day = parse_date(raw)
        if day is None:
            raise ValueError(raw)
        moment = datetime.combine(day, time(0), tzinfo=UTC)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)  # the wire speaks UTC
    return moment


def alert_filters_parse(query: Mapping[str, str]) -> AlertFilters:
    """Validate the list's query parameters; a bad value is `400 invalid_filter` naming it.
    Parameters that are not filters (page, page_size, …) are ignored."""
    chain = query.get("chain") or None
    if chain is not None and not is_chain_id(chain):
        raise _invalid_filter("chain", f"{chain!r} is not a chain id")
    entity = query.get("entity") or None
    if entity is not None and len(entity) > 64:
        raise _invalid_filter("entity", "an entity id has at most 64 characters")
    since = None
    if raw_since := query.get("since"):
        try:
            since = _since(raw_since)
        except (ValueError, OverflowError):
            raise _invalid_filter("since", f"{raw_since!r} is not an RFC 3339 time or a date") from None
    return AlertFilters(
        codes=_choices(query, "code", ALERT_CODES),
        severities=_choices(query, "severity", tuple(Alert.Severity.values)),
        statuses=_choices(query, "status", tuple(Alert.Status.values)),
        chain=chain, entity=entity, since=since,
    )


def alert_list(*, filters: AlertFilters | None = None) -> QuerySet[Alert]:
    """Alerts matching the filters, newest first."""
    filters = filters or AlertFilters()
    qs = Alert.objects.select_related("assignee")
    if filters.codes:
        qs = qs.filter(code__in=filters.codes)
    if filters.severities:
        qs = qs.filter(severity__in=filters.severities)
    if filters.statuses:
        qs = qs.filter(status__in=filters.statuses)
    if filters.chain:
        qs = qs.filter(chain_id=filters.chain)
    if filters.entity:
        qs = qs.filter(entity_links__entity_id=filters.entity)  # unique per (alert, entity): no dups
    if filters.since:
        qs = qs.filter(last_seen__gte=filters.since)
    return qs.order_by("-created_at", "-id")


def alert_get(*, alert_id: int | str) -> Alert:
    try:
        pk = int(alert_id)
    except (TypeError, ValueError):
        pk = -1
    alert = Alert.objects.select_related("assignee").filter(pk=pk).first() if pk > 0 else None
    if alert is None:
        raise NotFound(f"No alert {alert_id}.", code="unknown_alert")
    return alert


def alert_mask(alerts: Iterable[Alert], *, reveal: bool) -> IdentifierMask:
    """The mask for showing `alerts`: `reveal` for a viewer who may see person ids
    (`penetration.can_see_person_ids`). Otherwise the registered kinds of the alerts' entities are
    looked up (one query), so that persons without a PRC ID number are masked too."""
    mask = IdentifierMask(reveal=reveal)
    mask.learn(e for a in alerts for e in a.entities)
    return mask


def _english(language: str | None) -> bool:
    return (language or translation.get_language() or "").lower().startswith("en")


def alert_json(alert: Alert, *, mask: IdentifierMask | None = None, language: str | None = None) -> AlertJson:
    """An item of `GET alerts`; title and detail in `language` (default: the active language).
    Without `mask`, person ids are masked."""
    if mask is None:
        mask = alert_mask([alert], reveal=False)
    english = _english(language)
    return {
        "id": alert.pk,
        "code": alert.code,
        "severity": alert.severity,
        "status": alert.status,
        "title": mask.text(alert.title_en if english else alert.title_zh),
        "detail": mask.text(alert.detail_en if english else alert.detail_zh),
        "chain": alert.chain_id or None,
        "block_height": alert.block_height,
        "tx_ids": list(alert.tx_ids),
        "entities": [mask(e) for e in alert.entities],
        "created_at": format_time(alert.created_at),
        "last_seen": format_time(alert.last_seen),
        "assignee": alert.assignee.get_username() if alert.assignee_id and alert.assignee else None,
    }


def alert_event_json(alert: Alert, *, mask: IdentifierMask) -> AlertEventJson:
    """The alert inside a live event: the list item in Chinese, plus the English texts."""
    return {
        **alert_json(alert, mask=mask, language="zh-hans"),
        "title_en": mask.text(alert.title_en),
        "detail_en": mask.text(alert.detail_en),
    }  # type: ignore[typeddict-item]


def alert_history(alert: Alert, *, mask: IdentifierMask) -> list[AlertHistoryEntry]:
    rows = AlertHistory.objects.filter(alert=alert).select_related("by").order_by("at", "id")
    return [
        {
            "at": format_time(row.at),
            "by": row.by.get_username() if row.by_id and row.by else None,
            "field": row.field,
            "from": row.from_value or None,
            "to": row.to_value or None,
            "note": mask.text(row.note),
        }
        for row in rows
    ]


def alert_detail_json(alert: Alert, *, reveal: bool = False, language: str | None = None) -> AlertDetailJson:
    """`GET alerts/{id}`: the list item with its evidence and history; person ids masked unless
    `reveal` (a viewer who may see them)."""
    mask = IdentifierMask(reveal=reveal)
    mask.learn([*alert.entities, *json_strings(alert.evidence)])  # one query, when masking
    return {
        **alert_json(alert, mask=mask, language=language),
        "evidence": mask.json(alert.evidence),
        "history": alert_history(alert, mask=mask),
    }  # type: ignore[typeddict-item]
