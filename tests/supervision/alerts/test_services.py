"""alert_raise (deduplication, evidence, repeat policy) and alert_update (triage and history)."""

from __future__ import annotations

import threading
from datetime import timedelta
from unittest import mock

import pytest
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from businesschain.errors import DomainError, NotFound
from supervision.models import Alert, AlertEntity, AlertHistory
from supervision.selectors import ALERT_CODES
from supervision.services import (
    MAX_EVIDENCE_IDS,
    SEVERITIES,
    alert_occurrence,
    alert_raise,
    alert_update,
    alerts_raise,
    severity_for,
    transition_allowed,
)

pytestmark = pytest.mark.django_db


def raise_wash_trade(**overrides):
    values = {
        "code": "wash_trade", "severity": "high", "fingerprint": "wash_trade:sse:T1",
        "title_zh": "对倒交易", "title_en": "Wash trade", "detail_zh": "买卖双方同属一个控制组",
        "detail_en": "Buyer and seller are in one control group", "chain_id": "sse", "block_height": 7,
        "tx_ids": ["a" * 64], "entities": ["E1", "E2"], "evidence": {"security": "600000"},
    }
    values.update(overrides)
    return alert_raise(**values)


# --- severities -------------------------------------------------------------------------------

def test_severity_table_is_the_spec_table():
    assert SEVERITIES == {
        "fork": "critical", "bad_signature": "high", "bad_prev_hash": "high", "chain_stalled": "medium",
        "circular_holding": "medium", "wash_trade": "high", "trade_ring": "high",
        "related_party_trade": "medium", "threshold_crossing": "high", "broker_stake_limit": "medium",
    }
    assert set(ALERT_CODES) == set(SEVERITIES)
    assert severity_for("fork") == "critical"
    with pytest.raises(KeyError):
        severity_for("nonsense")


# --- raising and deduplication ----------------------------------------------------------------

def test_first_raise_creates_an_open_alert_with_its_entities():
    result = raise_wash_trade()
    assert result.created
    alert = Alert.objects.get()
    assert (alert.status, alert.severity, alert.occurrences) == ("open", "high", 1)
    assert alert.created_at == alert.last_seen
    assert sorted(AlertEntity.objects.values_list("entity_id", flat=True)) == ["E1", "E2"]


def test_same_fingerprint_twice_is_one_alert_with_two_occurrences_and_later_last_seen():
    first_at = timezone.now() - timedelta(minutes=5)
    first = raise_wash_trade(at=first_at)
    second = raise_wash_trade(at=first_at + timedelta(minutes=3), tx_ids=["b" * 64], entities=["E3"],
                              evidence={"price": "10.5"}, detail_en="seen again")
    assert not second.created and second.alert.pk == first.alert.pk
    alert = Alert.objects.get()
    assert alert.occurrences == 2
    assert alert.created_at == first_at
    assert alert.last_seen == first_at + timedelta(minutes=3)
    assert alert.tx_ids == ["a" * 64, "b" * 64]
    assert alert.entities == ["E1", "E2", "E3"]
    assert alert.evidence["security"] == "600000" and alert.evidence["price"] == "10.5"
    assert alert.evidence["last"]["block_height"] == 7
    assert alert.detail_en == "seen again"
    assert sorted(AlertEntity.objects.values_list("entity_id", flat=True)) == ["E1", "E2", "E3"]


def test_an_older_repeat_does_not_move_last_seen_back():
    now = timezone.now()
    raise_wash_trade(at=now)
    raise_wash_trade(at=now - timedelta(hours=1))
    assert Alert.objects.get().last_seen == now


def test_evidence_lists_stay_bounded_keeping_the_newest_and_entity_rows_follow():
    raise_wash_trade(tx_ids=[f"{i:064x}" for i in range(MAX_EVIDENCE_IDS)],
                     entities=[f"E{i}" for i in range(MAX_EVIDENCE_IDS)])
    raise_wash_trade(tx_ids=["f" * 64], entities=["NEW"])
    alert = Alert.objects.get()
    assert len(alert.tx_ids) == MAX_EVIDENCE_IDS and alert.tx_ids[-1] == "f" * 64
    assert f"{0:064x}" not in alert.tx_ids
    assert len(alert.entities) == MAX_EVIDENCE_IDS and "E0" not in alert.entities
    assert set(AlertEntity.objects.values_list("entity_id", flat=True)) == set(alert.entities)


def test_a_very_long_fingerprint_is_hashed_stably():
    long = "circular_holding:" + ":".join(f"ORG{i}" for i in range(200))
    first = raise_wash_trade(fingerprint=long)
    second = raise_wash_trade(fingerprint=long)
    assert first.alert.pk == second.alert.pk
    assert first.alert.fingerprint.startswith("wash_trade:sm3:") and len(first.alert.fingerprint) < 255


def test_bad_arguments_are_programming_errors():
    with pytest.raises(ValueError):
        raise_wash_trade(severity="urgent")
    with pytest.raises(ValueError):
        raise_wash_trade(fingerprint="")


def test_repeat_keeps_a_closed_alert_closed(regulator):
    alert = raise_wash_trade().alert
    alert_update(alert_id=alert.pk, by=regulator, status="closed")
    raise_wash_trade()
    alert.refresh_from_db()
    assert (alert.status, alert.occurrences) == ("closed", 2)


def test_repeat_with_higher_severity_raises_it_and_reopens_a_closed_alert(regulator):
    alert = raise_wash_trade(severity="medium").alert
    alert_update(alert_id=alert.pk, by=regulator, status="closed")
    raise_wash_trade(severity="critical")
    alert.refresh_from_db()
    assert (alert.status, alert.severity) == ("open", "critical")
    rows = list(AlertHistory.objects.filter(by=None).values_list("field", "from_value", "to_value"))
    assert rows == [("severity", "medium", "critical"), ("status", "closed", "open")]


def test_repeat_never_lowers_severity_nor_reopens_an_acknowledged_alert(regulator):
    alert = raise_wash_trade(severity="high").alert
    alert_update(alert_id=alert.pk, by=regulator, status="acknowledged")
    raise_wash_trade(severity="medium")
    alert.refresh_from_db()
    assert (alert.status, alert.severity) == ("acknowledged", "high")


def test_alert_events_are_published_only_on_commit(django_capture_on_commit_callbacks):
    with mock.patch("supervision.services.publish_alerts") as publish:
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            raise_wash_trade()
            raise_wash_trade()
        publish.assert_not_called()
        for callback in callbacks:
            callback()
    assert [event for c in publish.call_args_list for _, event in c.args[0]] == [
        "alert.created", "alert.updated"]


def run_at_once(count: int, work) -> None:
    """`work` in `count` threads released together, each on its own connection; none may fail."""
    barrier = threading.Barrier(count)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            barrier.wait()
            work()
        except BaseException as error:
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks and races need PostgreSQL")
@pytest.mark.django_db(transaction=True)
def test_concurrent_first_raises_of_one_fingerprint_make_one_alert():
    run_at_once(4, raise_wash_trade)
    alert = Alert.objects.get()
    assert alert.occurrences == 4
    assert AlertEntity.objects.count() == 2


# --- raising many at once --------------------------------------------------------------------

def wash_trade_values(**overrides):
    values = {
        "code": "wash_trade", "severity": "high", "fingerprint": "wash_trade:sse:T1",
        "title_zh": "对倒交易", "title_en": "Wash trade", "detail_zh": "买卖双方同属一个控制组",
        "detail_en": "Buyer and seller are in one control group", "chain_id": "sse", "block_height": 7,
        "tx_ids": ["a" * 64], "entities": ["E1", "E2"], "evidence": {"security": "600000"},
    }
    values.update(overrides)
    return values


def stored_state():
    """Everything raising writes, without ids: alerts, their history and their entity rows."""
    alerts = sorted(Alert.objects.values_list(
        "fingerprint", "code", "severity", "status", "title_en", "detail_en", "chain_id", "block_height",
        "tx_ids", "entities", "evidence", "occurrences", "created_at", "last_seen"))
    history = sorted(AlertHistory.objects.values_list(
        "alert__fingerprint", "at", "by", "field", "from_value", "to_value", "note"))
    links = sorted(AlertEntity.objects.values_list("alert__fingerprint", "entity_id"))
    return alerts, history, links


def test_raising_many_at_once_writes_what_raising_them_one_by_one_writes(regulator):
    t0 = timezone.now() - timedelta(hours=1)
    batch = [  # a repeat that raises the severity of a closed alert, a new alert repeated in the
        # batch, a plain repeat, an entity list past its bound
        wash_trade_values(fingerprint="fp:closed", severity="critical", entities=["E3"], at=t0),
        wash_trade_values(fingerprint="fp:new", tx_ids=["b" * 64], at=t0 + timedelta(minutes=1)),
        wash_trade_values(fingerprint="fp:new", severity="critical", entities=["E9"], detail_en="again",
                          evidence={"price": "10.5"}, at=t0 + timedelta(minutes=2)),
        wash_trade_values(fingerprint="fp:open", block_height=9, tx_ids=["c" * 64], at=t0),
        wash_trade_values(fingerprint="fp:full", entities=[f"N{i}" for i in range(MAX_EVIDENCE_IDS)], at=t0),
    ]

    def prepare():
        Alert.objects.all().delete()
        closed = alert_raise(**wash_trade_values(fingerprint="fp:closed", severity="medium",
                                                 at=t0 - timedelta(days=1))).alert
        alert_update(alert_id=closed.pk, by=regulator, status="closed")
        AlertHistory.objects.all().delete()  # the triage row carries the wall clock
        alert_raise(**wash_trade_values(fingerprint="fp:open", at=t0 - timedelta(days=1)))
        alert_raise(**wash_trade_values(fingerprint="fp:full", at=t0 - timedelta(days=1)))

    prepare()
    one_by_one = [alert_raise(**values) for values in batch]
    expected = stored_state()
    prepare()
    at_once = alerts_raise(occurrences=[alert_occurrence(**values) for values in batch])
    assert stored_state() == expected
    assert [r.created for r in at_once] == [r.created for r in one_by_one] == [
        False, True, False, False, False]
    assert [r.alert.fingerprint for r in at_once] == [values["fingerprint"] for values in batch]
    alerts, history, links = expected
    assert [(a[0], a[2], a[3], a[11]) for a in alerts] == [  # fingerprint, severity, status, occurrences
        ("fp:closed", "critical", "open", 2), ("fp:full", "high", "open", 2),
        ("fp:new", "critical", "open", 2), ("fp:open", "high", "open", 2)]
    assert [(h[0], h[3], h[4], h[5]) for h in history] == [
        ("fp:closed", "severity", "medium", "critical"), ("fp:closed", "status", "closed", "open"),
        ("fp:new", "severity", "high", "critical")]
    assert ("fp:full", "E1") not in links and ("fp:full", "N0") in links  # the oldest entity went


def test_raising_many_at_once_publishes_each_result_on_commit_only(django_capture_on_commit_callbacks):
    raise_wash_trade(fingerprint="fp:old")
    batch = [alert_occurrence(**wash_trade_values(fingerprint=fp)) for fp in ("fp:old", "fp:new", "fp:new")]
    with mock.patch("supervision.services.publish_alerts") as publish:
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            results = alerts_raise(occurrences=batch)
        publish.assert_not_called()
        for callback in callbacks:
            callback()
    publish.assert_called_once()  # one batch for the whole raise
    assert [(alert.pk, event) for alert, event in publish.call_args.args[0]] == [
        (results[0].alert.pk, "alert.updated"), (results[1].alert.pk, "alert.created"),
        (results[1].alert.pk, "alert.updated")]


def test_raising_many_at_once_takes_the_same_queries_for_3_or_40_findings():
    def queries(n: int, prefix: str) -> tuple[int, int]:
        batch = [alert_occurrence(**wash_trade_values(fingerprint=f"{prefix}:{i}", entities=[f"E{i}"]))
                 for i in range(n)]
        with CaptureQueriesContext(connection) as first:
            assert all(r.created for r in alerts_raise(occurrences=batch))
        again = [alert_occurrence(**wash_trade_values(fingerprint=f"{prefix}:{i}", entities=[f"X{i}"],
                                                      severity="critical")) for i in range(n)]
        with CaptureQueriesContext(connection) as repeat:
            assert not any(r.created for r in alerts_raise(occurrences=again))
        return len(first.captured_queries), len(repeat.captured_queries)

    few, many = queries(3, "few"), queries(40, "many")  # 40: one insert batch on SQLite too
    assert few == many, (few, many)
    assert Alert.objects.filter(occurrences=2, severity="critical").count() == 43
    assert AlertHistory.objects.filter(field="severity").count() == 43
    assert AlertEntity.objects.filter(entity_id__startswith="X").count() == 43


@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks and races need PostgreSQL")
@pytest.mark.django_db(transaction=True)
def test_concurrent_bulk_raises_of_the_same_new_fingerprints_make_one_alert_each():
    fingerprints = [f"race:{i}" for i in range(20)]
    run_at_once(3, lambda: alerts_raise(occurrences=[
        alert_occurrence(**wash_trade_values(fingerprint=fp)) for fp in fingerprints]))
    assert sorted(Alert.objects.values_list("fingerprint", "occurrences")) == sorted(
        (fp, 3) for fp in fingerprints)
    assert AlertEntity.objects.count() == 2 * len(fingerprints)


# --- triage -----------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("current", "target", "allowed"),
    [
        ("open", "acknowledged", True), ("open", "escalated", True), ("open", "closed", True),
        ("acknowledged", "escalated", True), ("acknowledged", "closed", True),
        ("escalated", "closed", True), ("acknowledged", "open", True), ("escalated", "open", True),
        ("closed", "open", True), ("escalated", "acknowledged", False),
        ("closed", "acknowledged", False), ("closed", "escalated", False), ("open", "open", False),
    ],
)
def test_transitions_go_forward_along_the_chain_or_back_to_open(current, target, allowed):
    assert transition_allowed(current, target) is allowed


def test_every_change_is_recorded_with_who_when_from_to_and_note(regulator, other_regulator):
    alert = raise_wash_trade().alert
    before = timezone.now()
    alert_update(alert_id=alert.pk, by=regulator, status="acknowledged", assignee=other_regulator,
                 note="looking into it")
    alert_update(alert_id=alert.pk, by=other_regulator, note="called the broker")
    alert_update(alert_id=alert.pk, by=other_regulator, status="escalated")
    alert_update(alert_id=alert.pk, by=other_regulator, assignee=None)
    rows = list(AlertHistory.objects.filter(alert=alert).order_by("id"))
    assert [(r.by.username, r.field, r.from_value, r.to_value, r.note) for r in rows] == [
        ("analyst", "status", "open", "acknowledged", "looking into it"),
        ("analyst", "assignee", "", "second-analyst", "looking into it"),
        ("second-analyst", "note", "", "", "called the broker"),
        ("second-analyst", "status", "acknowledged", "escalated", ""),
        ("second-analyst", "assignee", "second-analyst", "", ""),
    ]
    assert all(r.at >= before for r in rows)
    alert.refresh_from_db()
    assert (alert.status, alert.assignee) == ("escalated", None)


def test_setting_the_current_value_changes_and_records_nothing(regulator):
    alert = raise_wash_trade().alert
    alert_update(alert_id=alert.pk, by=regulator, status="open", assignee=None)
    assert AlertHistory.objects.count() == 0


def test_invalid_transition_is_refused_and_changes_nothing(regulator, other_regulator):
    alert = raise_wash_trade().alert
    alert_update(alert_id=alert.pk, by=regulator, status="escalated")
    with pytest.raises(DomainError) as caught:
        alert_update(alert_id=alert.pk, by=regulator, status="acknowledged", assignee=other_regulator,
                     note="x")
    assert caught.value.code == "invalid_transition" and caught.value.http_status == 400
    assert caught.value.extra["errors"][0]["path"] == "/status"
    alert.refresh_from_db()
    assert (alert.status, alert.assignee) == ("escalated", None)
    assert AlertHistory.objects.count() == 1


def test_only_regulators_can_be_assigned(regulator, outsider):
    alert = raise_wash_trade().alert
    with pytest.raises(DomainError) as caught:
        alert_update(alert_id=alert.pk, by=regulator, assignee=outsider)
    assert caught.value.code == "invalid_assignee"


def test_unknown_alert_is_not_found(regulator):
    with pytest.raises(NotFound):
        alert_update(alert_id=999999, by=regulator, note="x")


def test_triage_publishes_alert_updated_on_commit_only_when_something_changed(
    regulator, django_capture_on_commit_callbacks,
):
    alert = raise_wash_trade().alert
    with mock.patch("supervision.services.publish_alert") as publish:
        with django_capture_on_commit_callbacks(execute=True):
            alert_update(alert_id=alert.pk, by=regulator, status="open")
        publish.assert_not_called()
        with django_capture_on_commit_callbacks(execute=True):
            alert_update(alert_id=alert.pk, by=regulator, status="closed")
        assert publish.call_args.args[1] == "alert.updated"
        assert publish.call_args.args[0].status == "closed"
