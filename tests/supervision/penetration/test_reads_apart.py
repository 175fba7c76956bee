"""The per-block analysis reads positions (threshold crossings) and roles and stakes (related
parties) on a second connection while it runs the trade rules, when its transaction is the
outermost one; inside a caller's transaction it reads them itself. Both find the same. The
positions are read for a plan made from the structure cached before the block's own structure
refresh, which is made again when that refresh changes an account's holder or a control group."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from businesschain.models import Position, Role
from supervision.models import ThresholdCrossing
from supervision.surveillance import _EarlyReads, _reads_apart_possible
from tests.supervision.penetration.conftest import Ledger
from tests.supervision.penetration.test_rules import SECURITY, alerts, analyse, market  # noqa: F401

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="a second connection with the pool"),
]


def crossing_with_a_related_party_trade(ledger: Ledger, market: dict[str, str]) -> dict:  # noqa: F811
    """Group G (P, O1, O2) holds 20,000 on szse (account A0000009 of P) and buys 31,000 on sse,
    and O1 sells 700 to O4, who shares a director with O1: 50,300 of 1,000,000 is past 5 %."""
    twenty_thousand_held_on_szse(market)
    return ledger.submit([ledger.trade(SECURITY, "A000000F", "A0000001", 31_000),
                          ledger.trade(SECURITY, "A0000001", "A0000008", 700)])


def tables_read(captured: CaptureQueriesContext) -> str:
    return " ".join(q["sql"] for q in captured.captured_queries)


def assert_found(result, market: dict[str, str]) -> None:  # noqa: F811
    assert result.crossings_opened == 1 and result.findings == {"related_party_trade": 1}
    crossing = ThresholdCrossing.objects.get()
    assert (crossing.before_quantity, crossing.after_quantity, crossing.step) == (20_000, 50_300, 1)
    assert set(crossing.members) == {market["p"], market["o1"], market["o2"]}
    [alert] = alerts("related_party_trade")
    assert set(alert.entities) == {market["o1"], market["o4"]}


def test_outermost_analysis_reads_positions_and_roles_on_another_connection(ledger, market):  # noqa: F811
    block = crossing_with_a_related_party_trade(ledger, market)
    assert _reads_apart_possible() is False  # not inside an analysis
    with CaptureQueriesContext(connection) as captured:
        result = analyse(block)
    read_here = tables_read(captured)
    assert Position._meta.db_table not in read_here and Role._meta.db_table not in read_here
    assert_found(result, market)


def test_analysis_inside_a_callers_transaction_reads_everything_itself(ledger, market):  # noqa: F811
    block = crossing_with_a_related_party_trade(ledger, market)
    with CaptureQueriesContext(connection) as captured, transaction.atomic():
        result = analyse(block)
    read_here = tables_read(captured)
    assert Position._meta.db_table in read_here and Role._meta.db_table in read_here
    assert_found(result, market)


def holds_for_spy(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """What `_EarlyReads.holds_for` answered during the analyses (the plan made from the
    structure cached before the block's refresh: kept or made again)."""
    answers: list[bool] = []
    original = _EarlyReads.holds_for

    def spy(self: _EarlyReads, structure: object) -> bool:
        answers.append(original(self, structure))
        return answers[-1]

    monkeypatch.setattr(_EarlyReads, "holds_for", spy)
    return answers


def twenty_thousand_held_on_szse(market: dict[str, str]) -> None:  # noqa: F811
    szse = Ledger("szse")
    analyse(szse.submit([szse.account("A0000009", market["p"], market["b1"]),
                         szse.account("A000000G", market["fund"], market["b1"])]))
    analyse(szse.submit([szse.trade(SECURITY, "A000000G", "A0000009", 20_000)]))


def test_plan_made_before_the_structure_refresh_is_kept_when_holders_and_groups_stay(
        ledger, market, monkeypatch):  # noqa: F811
    block = crossing_with_a_related_party_trade(ledger, market)
    answers = holds_for_spy(monkeypatch)
    result = analyse(block)
    assert answers == [True]
    assert_found(result, market)


def test_plan_made_before_an_account_is_opened_in_the_block_is_made_again(ledger, market, monkeypatch):  # noqa: F811
    twenty_thousand_held_on_szse(market)
    answers = holds_for_spy(monkeypatch)
    # P opens A000000P on sse and buys 31,000 on it in the same block: 51,000 of 1,000,000.
    result = analyse(ledger.submit([ledger.account("A000000P", market["p"], market["b2"]),
                                    ledger.trade(SECURITY, "A000000F", "A000000P", 31_000)]))
    assert answers == [False]
    assert result.crossings_opened == 1
    crossing = ThresholdCrossing.objects.get()
    assert (crossing.before_quantity, crossing.after_quantity, crossing.step) == (20_000, 51_000, 1)


def test_plan_made_before_a_group_changes_in_the_block_is_made_again(ledger, market, monkeypatch):  # noqa: F811
    twenty_thousand_held_on_szse(market)
    answers = holds_for_spy(monkeypatch)
    # O4 comes under P's control and buys 31,000 in the same block: group G holds 51,000.
    result = analyse(ledger.submit([ledger.role(market["o4"], market["p"]),
                                    ledger.trade(SECURITY, "A000000F", "A0000008", 31_000)]))
    assert answers == [False]
    assert result.crossings_opened == 1
    crossing = ThresholdCrossing.objects.get()
    assert (crossing.before_quantity, crossing.after_quantity) == (20_000, 51_000)
    assert market["o4"] in crossing.members and market["p"] in crossing.members


def test_positions_read_apart_are_taken_as_of_the_block_when_analysis_lags(ledger, market, monkeypatch):  # noqa: F811
    answers = holds_for_spy(monkeypatch)
    crossing = ledger.submit([ledger.trade(SECURITY, "A000000F", "A0000001", 60_000)])  # G reaches 6 %
    ledger.advance(timedelta(minutes=1))
    ledger.submit([ledger.trade(SECURITY, "A0000001", "A000000F", 60_000)])  # and sells it all again
    result = analyse(crossing)  # the chain is a block ahead of the analysis
    assert answers == [True]
    assert result.crossings_opened == 1
    [row] = ThresholdCrossing.objects.all()
    assert (row.before_quantity, row.after_quantity, row.direction) == (0, 60_000, "up")
