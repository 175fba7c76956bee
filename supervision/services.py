"""Alert services (supervision API §1 "Alert rules"): raising, triage, chain health.

`alert_raise` is the one way any part of the system raises an alert. Findings are deduplicated by
fingerprint with the database's unique constraint: a repeat updates `last_seen`, `occurrences`,
the title and detail, and merges its evidence instead of adding a row. Every write publishes
`alert.created` / `alert.updated` (and `chain.status`) on commit, never before.

Repeat policy: a repeat of an alert never lowers its severity; if it raises it, the new severity is
kept and recorded in the history. A repeat does not reopen an `acknowledged` or `escalated` alert
(analysts already own it) nor a `closed` one (an analyst decided it), unless the severity rises,
which reopens a closed alert (history row by the system, `by` null).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any, Final

from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from businesschain.api.permissions import is_regulator
from businesschain.errors import InvalidInput, NotFound
from businesschain.models import Chain, RejectedSubmission
from businesschain.registry import chain_status_set
from gm.sm3 import sm3_hex
from supervision.models import Alert, AlertEntity, AlertHistory
from supervision.realtime.events import AlertEventType
from supervision.realtime.publish import publish_alert, publish_alerts, publish_chain_status
from supervision.selectors import ALERT_SEVERITIES

log = logging.getLogger(__name__)

Severity = Alert.Severity
Status = Alert.Status

SEVERITIES: Final = ALERT_SEVERITIES  # supervision API §1: code → severity
SEVERITY_RANK: Final[dict[str, int]] = {
    Severity.LOW: 0, Severity.MEDIUM: 1, Severity.HIGH: 2, Severity.CRITICAL: 3,
}
#: The triage chain; moves go forward along it (skipping allowed) or back to `open`.
STATUS_ORDER: Final[tuple[str, ...]] = (Status.OPEN, Status.ACKNOWLEDGED, Status.ESCALATED, Status.CLOSED)
#: At most this many transaction ids and entities are kept per alert; the oldest go first.
MAX_EVIDENCE_IDS: Final = 200
MAX_NOTE_LENGTH: Final = 2000
_RAISE_ATTEMPTS: Final = 3


def severity_for(code: str) -> str:
    """The severity the spec gives an alert code (KeyError for an unknown code)."""
    return SEVERITIES[code]


@dataclass(frozen=True, slots=True)
class AlertRaiseResult:
    alert: Alert
    created: bool


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = _Unset()


# --- raising ----------------------------------------------------------------------------------


def alert_raise(
    *,
    code: str,
    severity: str,
    fingerprint: str,
    title_zh: str,
    title_en: str,
    detail_zh: str,
    detail_en: str,
    chain_id: str = "",
    block_height: int | None = None,
    tx_ids: Iterable[str] = (),
    entities: Iterable[str] = (),
    evidence: Mapping[str, Any] | None = None,
    at: datetime | None = None,
) -> AlertRaiseResult:
    """Raise a finding, or record a repeat of the one with the same fingerprint.

    Safe under concurrency: the existing row is locked (`SELECT … FOR UPDATE`); two first raises
    racing on the unique fingerprint end with one insert, the other retrying as a repeat. Callable
    inside a caller's transaction (it then uses a savepoint). Publishes on commit. One finding
    of `alerts_raise`, which does all raising.
    """
    [result] = alerts_raise(occurrences=[alert_occurrence(
        code=code, severity=severity, fingerprint=fingerprint, title_zh=title_zh, title_en=title_en,
        detail_zh=detail_zh, detail_en=detail_en, chain_id=chain_id, block_height=block_height,
        tx_ids=tx_ids, entities=entities, evidence=evidence, at=at,
    )])
    return result


@dataclass(frozen=True, slots=True)
class AlertOccurrence:
    """One finding to raise, validated and normalised by `alert_occurrence`."""

    code: str
    severity: str
    fingerprint: str
    title_zh: str
    title_en: str
    detail_zh: str
    detail_en: str
    chain_id: str
    block_height: int | None
    tx_ids: list[str]
    entities: list[str]
    evidence: dict[str, Any]
    at: datetime


def alert_occurrence(
    *,
    code: str,
    severity: str,
    fingerprint: str,
    title_zh: str,
    title_en: str,
    detail_zh: str,
    detail_en: str,
    chain_id: str = "",
    block_height: int | None = None,
    tx_ids: Iterable[str] = (),
    entities: Iterable[str] = (),
    evidence: Mapping[str, Any] | None = None,
    at: datetime | None = None,
) -> AlertOccurrence:
    """A finding for `alert_raise` / `alerts_raise` (same arguments): a fingerprint longer than the
    column becomes `<code>:sm3:<hash>`, titles are cut to 300 characters, ids deduplicated."""
    if severity not in SEVERITY_RANK:
        raise ValueError(f"unknown severity {severity!r}")
    if not code or len(code) > 32:
        raise ValueError(f"bad alert code {code!r}")
    if not fingerprint:
        raise ValueError("an alert needs a fingerprint")
    if len(fingerprint) > 255:
        fingerprint = f"{code}:sm3:{sm3_hex(fingerprint.encode('utf-8'))}"
    return AlertOccurrence(
        code=code, severity=severity, fingerprint=fingerprint,
        title_zh=title_zh[:300], title_en=title_en[:300], detail_zh=detail_zh, detail_en=detail_en,
        chain_id=chain_id, block_height=block_height,
        tx_ids=_unique(tx_ids), entities=_unique(entities),
        evidence=dict(evidence or {}), at=at or timezone.now(),
    )


def alerts_raise(*, occurrences: Sequence[AlertOccurrence]) -> list[AlertRaiseResult]:
    """`alert_raise` for many findings in a bounded number of queries, whatever their number:
    the existing alerts are read and locked in one query (in fingerprint order), then new alerts,
    repeats, history rows and entity links are written in bulk. Same semantics as raising them one
    by one in order (a fingerprint repeated in the batch is a repeat of the first); one result per
    occurrence, in order. Publishes `alert.created` / `alert.updated` per result on commit, in one
    batch (`publish_alerts`)."""
    if not occurrences:
        return []
    # One transaction (no savepoint of its own inside a caller's: an attempt writes nothing before
    # its insert, which has one).
    with transaction.atomic(savepoint=False):
        for attempt in range(_RAISE_ATTEMPTS):
            results = _raise_many(occurrences, last=attempt == _RAISE_ATTEMPTS - 1)
            if results is not None:
                return results
    raise AssertionError("unreachable")


def _raise_many(occurrences: Sequence[AlertOccurrence], *, last: bool) -> list[AlertRaiseResult] | None:
    """One attempt of `alerts_raise`; None when another transaction inserted one of these
    fingerprints first (read them again and repeat), unless it is the `last`."""
    fingerprints = sorted({occ.fingerprint for occ in occurrences})
    known = {a.fingerprint: a for a in Alert.objects.select_for_update().filter(
        fingerprint__in=fingerprints).order_by("fingerprint")}
    old_entities = {fp: set(alert.entities) for fp, alert in known.items()}
    alerts: dict[str, Alert] = dict(known)
    new: list[Alert] = []
    repeated: dict[str, Alert] = {}  # existing alerts with a repeat, by fingerprint
    fields: set[str] = set()
    history: list[AlertHistory] = []
    results: list[AlertRaiseResult] = []
    for occ in occurrences:
        alert = alerts.get(occ.fingerprint)
        if alert is None:
            alert = alerts[occ.fingerprint] = _new_alert(occ)
            new.append(alert)
            results.append(AlertRaiseResult(alert=alert, created=True))
            continue
        update, rows = _repeat(alert, occ)
        history += rows
        if occ.fingerprint in known:
            repeated[occ.fingerprint] = alert
            fields.update(update)
        results.append(AlertRaiseResult(alert=alert, created=False))
    if new:
        try:
            with transaction.atomic():  # savepoint: a lost insert race leaves the transaction usable
                Alert.objects.bulk_create(new)
        except IntegrityError:
            if last:
                raise
            return None
    if repeated:
        Alert.objects.bulk_update(list(repeated.values()), sorted(fields))
    AlertHistory.objects.bulk_create(history)  # after the alerts: new ones now have their ids
    gone = Q()
    links: list[AlertEntity] = [AlertEntity(alert=a, entity_id=e) for a in new for e in a.entities]
    for fp, alert in repeated.items():
        now_entities = set(alert.entities)
        if removed := old_entities[fp] - now_entities:
            gone |= Q(alert=alert, entity_id__in=removed)
        links += [AlertEntity(alert=alert, entity_id=e) for e in sorted(now_entities - old_entities[fp])]
    if gone:
        AlertEntity.objects.filter(gone).delete()
    AlertEntity.objects.bulk_create([link for link in links if len(link.entity_id) <= 64],
                                    ignore_conflicts=True)
    events: list[tuple[Alert, AlertEventType]] = [
        (result.alert, "alert.created" if result.created else "alert.updated") for result in results]
    transaction.on_commit(partial(publish_alerts, events), robust=True)
    return results


def _new_alert(occ: AlertOccurrence) -> Alert:
    return Alert(
        code=occ.code, severity=occ.severity, status=Status.OPEN, fingerprint=occ.fingerprint,
        title_zh=occ.title_zh, title_en=occ.title_en, detail_zh=occ.detail_zh, detail_en=occ.detail_en,
        chain_id=occ.chain_id, block_height=occ.block_height,
        tx_ids=occ.tx_ids[-MAX_EVIDENCE_IDS:], entities=occ.entities[-MAX_EVIDENCE_IDS:],
        evidence=occ.evidence, occurrences=1, created_at=occ.at, last_seen=occ.at,
    )


def _repeat(alert: Alert, occ: AlertOccurrence) -> tuple[list[str], list[AlertHistory]]:
    """A repeat applied to `alert` in memory: the fields to save and the history rows to add."""
    alert.occurrences += 1
    alert.last_seen = max(alert.last_seen, occ.at)
    alert.title_zh, alert.title_en = occ.title_zh, occ.title_en
    alert.detail_zh, alert.detail_en = occ.detail_zh, occ.detail_en
    alert.tx_ids = _merge_bounded(alert.tx_ids, occ.tx_ids)
    alert.entities = _merge_bounded(alert.entities, occ.entities)
    if not alert.chain_id and occ.chain_id:
        alert.chain_id, alert.block_height = occ.chain_id, occ.block_height
    # Where the alert was first raised stays in chain/block_height; the latest occurrence is here.
    alert.evidence = {
        **alert.evidence,
        **occ.evidence,
        "last": {"chain": occ.chain_id or None, "block_height": occ.block_height, "tx_ids": occ.tx_ids[:20]},
    }
    update = ["occurrences", "last_seen", "title_zh", "title_en", "detail_zh", "detail_en",
              "tx_ids", "entities", "chain_id", "block_height", "evidence"]
    history: list[AlertHistory] = []
    if SEVERITY_RANK[occ.severity] > SEVERITY_RANK[alert.severity]:
        history.append(_history(alert, occ.at, None, "severity", alert.severity, occ.severity,
                                "severity rose on a repeat"))
        alert.severity = occ.severity
        update.append("severity")
        if alert.status == Status.CLOSED:
            history.append(_history(alert, occ.at, None, "status", alert.status, Status.OPEN,
                                    "reopened: the finding recurred with a higher severity"))
            alert.status = Status.OPEN
            update.append("status")
    return update, history


def _unique(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(str(v) for v in values if v))


def _merge_bounded(old: list[str], new: list[str]) -> list[str]:
    """Union in order of first appearance, keeping the newest `MAX_EVIDENCE_IDS`."""
    merged = list(dict.fromkeys([*old, *new]))
    return merged[-MAX_EVIDENCE_IDS:]


def _history(alert: Alert, at: datetime, by: User | None, field: str,
             from_value: str | None, to_value: str | None, note: str = "") -> AlertHistory:
    return AlertHistory(alert=alert, at=at, by=by, field=field, from_value=from_value or "",
                        to_value=to_value or "", note=note)


# --- triage -----------------------------------------------------------------------------------


def transition_allowed(current: str, target: str) -> bool:
    """Forward along open → acknowledged → escalated → closed (skipping allowed), or back to open."""
    if target == Status.OPEN:
        return current != Status.OPEN
    return STATUS_ORDER.index(target) > STATUS_ORDER.index(current)


@transaction.atomic
def alert_update(
    *,
    alert_id: int,
    by: User,
    status: str | None = None,
    assignee: User | _Unset | None = UNSET,
    note: str | None = None,
) -> Alert:
    """Triage an alert: move its status, (un)assign it, add a note. Every change is one history
    row (who, when, field, from, to, note); a note alone is a row with field `note`. Setting a
    field to its current value changes nothing. Publishes `alert.updated` on commit."""
    alert = (Alert.objects.select_for_update(of=("self",)).select_related("assignee")
             .filter(pk=alert_id).first())
    if alert is None:
        raise NotFound(f"No alert {alert_id}.", code="unknown_alert")
    note = (note or "").strip()
    if len(note) > MAX_NOTE_LENGTH:
        raise InvalidInput(f"A note has at most {MAX_NOTE_LENGTH} characters.", code="invalid",
                           errors=[{"path": "/note", "message": "too long"}])
    now = timezone.now()
    history: list[AlertHistory] = []
    update: list[str] = []

    if status is not None and status != alert.status:
        if status not in STATUS_ORDER:
            raise InvalidInput(f"Unknown status {status!r}.", code="invalid",
                               errors=[{"path": "/status", "message": f"unknown status {status!r}"}])
        if not transition_allowed(alert.status, status):
            raise InvalidInput(
                f"An alert cannot go from {alert.status!r} to {status!r}: statuses move forward along "
                "open → acknowledged → escalated → closed, or back to open.",
                code="invalid_transition",
                errors=[{"path": "/status", "message": f"cannot go from {alert.status} to {status}"}],
            )
        history.append(_history(alert, now, by, "status", alert.status, status, note))
        alert.status = status
        update.append("status")

    if not isinstance(assignee, _Unset) and _user_pk(assignee) != alert.assignee_id:
        if assignee is not None and not is_regulator(assignee):
            raise InvalidInput(
                "Alerts can only be assigned to regulators.", code="invalid_assignee",
                errors=[{"path": "/assignee", "message": "not a regulator"}],
            )
        history.append(_history(alert, now, by, "assignee", _username(alert.assignee),
                                _username(assignee), note))
        alert.assignee = assignee
        update.append("assignee")

    if not history and note:
        history.append(_history(alert, now, by, "note", None, None, note))
    if update:
        alert.save(update_fields=update)
    if history:
        AlertHistory.objects.bulk_create(history)
        transaction.on_commit(lambda: publish_alert(alert, "alert.updated"), robust=True)
    return alert


def _user_pk(user: User | None) -> Any:
    return None if user is None else user.pk


def _username(user: User | None) -> str:
    return "" if user is None else user.get_username()


# --- chain health -----------------------------------------------------------------------------

_REJECTION_ALERTS: Final[dict[str, tuple[str, str]]] = {
    # rejection code → (Chinese title, English title)
    "bad_signature": ("业务链区块签名验证失败", "Block signature by a registered node does not verify"),
    "bad_prev_hash": ("业务链区块未链接到已存链头", "Block does not link to the stored head"),
}


def alert_from_rejection(
    *, rejection: RejectedSubmission, consensus_failure: bool,
) -> AlertRaiseResult | None:
    """The chain-health alert a refused submission raises, if any (ECP/1 §5): `bad_signature` and
    `bad_prev_hash` (high), and `fork` (critical) when the competing block carries a valid quorum.
    A fork without a valid quorum stays a rejection record only."""
    chain_id, height, block_hash = rejection.chain_id_text, rejection.height, rejection.block_hash
    extra = rejection.extra or {}
    evidence: dict[str, Any] = {
        "chain": chain_id, "height": height, "block_hash": block_hash or None,
        "rejection_id": rejection.pk, "rejection_code": rejection.code,
        "received_at": rejection.received_at.isoformat(), "token": rejection.token_prefix or None,
    }
    code = rejection.code
    if code == "fork":
        if not consensus_failure:
            return None
        stored_hash = extra.get("stored_hash")
        evidence.update(stored_hash=stored_hash, consensus_failure=True)
        result = alert_raise(
            code="fork", severity=severity_for("fork"),
            fingerprint=f"fork:{chain_id}:{height}:{block_hash}",
            title_zh=f"业务链 {chain_id} 分叉：高度 {height} 出现两个达到法定签名数的区块",
            title_en=f"Chain {chain_id} forked: two blocks with a valid quorum at height {height}",
            detail_zh=(f"业务链 {chain_id} 在高度 {height} 提交了区块 {block_hash}，与已存区块 {stored_hash} "
                       "不同，且该竞争区块具有有效的法定数量签名：共识失效。"),
            detail_en=(f"Chain {chain_id} sent block {block_hash} for height {height}, which differs from "
                       f"the stored block {stored_hash} and carries a valid quorum: a consensus failure."),
            chain_id=chain_id, block_height=height, evidence=evidence,
        )
        transaction.on_commit(lambda: publish_chain_status(chain_id), robust=True)  # now `forked`
        return result
    if code not in _REJECTION_ALERTS:
        return None
    title_zh, title_en = _REJECTION_ALERTS[code]
    if code == "bad_signature":
        node = extra.get("node")
        evidence.update(node=node, signature_index=extra.get("signature_index"))
        detail_zh = (f"业务链 {chain_id} 高度 {height} 的区块 {block_hash} 中，"
                     f"已注册节点 {node} 的签名验证失败。")
        detail_en = (f"In block {block_hash} at height {height} of chain {chain_id}, the signature of "
                     f"registered node {node} does not verify.")
    else:
        expected = extra.get("expected_prev_hash")
        evidence.update(expected_prev_hash=expected)
        detail_zh = (f"业务链 {chain_id} 高度 {height} 的区块 {block_hash} 的 prev_hash 未指向已存链头"
                     f"（应为 {expected}）。")
        detail_en = (f"Block {block_hash} at height {height} of chain {chain_id} does not link to the "
                     f"stored head (expected prev_hash {expected}).")
    if "index" in extra:
        evidence["batch_index"] = extra["index"]
    return alert_raise(
        code=code, severity=severity_for(code),
        fingerprint=f"{code}:{chain_id}:{height}:{block_hash}",
        title_zh=f"{title_zh}（{chain_id} #{height}）", title_en=f"{title_en} ({chain_id} #{height})",
        detail_zh=detail_zh, detail_en=detail_en,
        chain_id=chain_id, block_height=height, evidence=evidence, at=rejection.received_at,
    )


@dataclass(frozen=True, slots=True)
class StallCheckResult:
    checked: int
    stalled: list[str]


def chains_check_stalled(*, now: datetime | None = None) -> StallCheckResult:
    """Mark active chains that sent no block for longer than their `stall_interval` as stalled and
    raise one `chain_stalled` alert per stall (fingerprint: chain and head height). A chain that
    delivers again goes back to `active` in ingestion; a new stall raises a new alert."""
    now = now or timezone.now()
    candidates = [
        chain for chain in Chain.objects.filter(status=Chain.Status.ACTIVE).only(
            "id", "stall_interval", "last_block_at", "created_at")
        if now - (chain.last_block_at or chain.created_at) > chain.stall_interval
    ]
    stalled = [chain.id for chain in candidates if _chain_mark_stalled(chain.id, now)]
    return StallCheckResult(checked=Chain.objects.count(), stalled=stalled)


@transaction.atomic
def _chain_mark_stalled(chain_id: str, now: datetime) -> bool:
    chain = Chain.objects.select_for_update().filter(id=chain_id).first()
    if chain is None or chain.status != Chain.Status.ACTIVE:
        return False
    since = chain.last_block_at or chain.created_at
    silent = now - since
    if silent <= chain.stall_interval:  # a block arrived meanwhile
        return False
    chain_status_set(chain_id=chain.id, status=Chain.Status.STALLED)
    limit_s, silent_s = int(chain.stall_interval.total_seconds()), int(silent.total_seconds())
    local_since = timezone.localtime(since).strftime("%Y-%m-%d %H:%M:%S")
    alert_raise(
        code="chain_stalled", severity=severity_for("chain_stalled"),
        fingerprint=f"chain_stalled:{chain.id}:{chain.head_height}",
        title_zh=f"业务链 {chain.id} 停止出块", title_en=f"Chain {chain.id} has stalled",
        detail_zh=(f"业务链 {chain.id}（{chain.name}）自 {local_since} 起已 {silent_s} 秒未提交区块，"
                   f"超过设定间隔 {limit_s} 秒；当前高度 {chain.head_height}。"),
        detail_en=(f"Chain {chain.id} ({chain.name}) has sent no block for {silent_s} s since "
                   f"{since.isoformat()}, longer than its interval of {limit_s} s; head height "
                   f"{chain.head_height}."),
        chain_id=chain.id, block_height=chain.head_height if chain.head_height >= 0 else None,
        evidence={
            "chain": chain.id, "head_height": chain.head_height, "head_hash": chain.head_hash or None,
            "last_block_at": chain.last_block_at.isoformat() if chain.last_block_at else None,
            "stall_interval_seconds": limit_s, "silent_seconds": silent_s,
        },
        at=now,
    )
    transaction.on_commit(lambda: publish_chain_status(chain_id), robust=True)
    return True


def chain_status_announce(*, chain_id: str) -> None:
    """Blocks were accepted: push the chain's summary to live clients, at most one per chain per
    `CHAIN_STATUS_MIN_INTERVAL` seconds (the latest state follows at the end of the interval)."""
    transaction.on_commit(lambda: publish_chain_status(chain_id, throttle=True), robust=True)
