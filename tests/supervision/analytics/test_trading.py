"""Trading rules (supervision API §1 alert rules): each fires, and its near miss does not."""

from __future__ import annotations

import gc
import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from supervision.analytics.ownership import Holding, OwnershipGraph, Role, control_groups
from supervision.analytics.trading import (
    Crossing,
    Disclosure,
    Leg,
    RingSearchBudgetExceeded,
    Trade,
    Transfer,
    broker_stake_findings,
    broker_stakes,
    crossing_finding,
    disclosure_due,
    is_disclosed,
    related_party_trades,
    threshold_crossings,
    threshold_step_change,
    trade_rings,
    wash_trades,
)

T0 = datetime(2024, 5, 6, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai
SEC = "600000"


def trade(tx: str, buyer: str, seller: str, quantity: int = 1000, minutes: float = 0) -> Trade:
    at = T0 + timedelta(minutes=minutes)
    return Trade(tx, "sse", 7, SEC, buyer, seller, quantity, Decimal("10.50"), at)


def leg(tx: str, source: str, target: str, quantity: int, minutes: float, security: str = SEC,
        chain: str = "sse") -> Leg:
    return Leg(tx, chain, 7, security, source, target, quantity, T0 + timedelta(minutes=minutes))


HOLDER = {"ACC1": "P1", "ACC1B": "P1", "ACC2": "P2", "ACC3": "P3", "ACC4": "P4"}
GROUP = {"P1": "G1", "P2": "G1", "P3": "G3", "P4": "G4"}


def group_of(entity: str) -> str:
    return GROUP.get(entity, entity)


# --- wash trades and related-party trades ----------------------------------------------------------


def test_wash_trade_fires_within_one_group_one_holder_or_one_account() -> None:
    trades = [trade("t-group", "ACC1", "ACC2"), trade("t-holder", "ACC1", "ACC1B"),
              trade("t-self", "ACC9", "ACC9"), trade("t-apart", "ACC1", "ACC3"),
              trade("t-unknown", "ACC1", "ACC9")]
    found = wash_trades(trades, HOLDER, group_of)
    assert [f.fingerprint for f in found] == [
        "wash_trade:t-group", "wash_trade:t-holder", "wash_trade:t-self"]
    first = found[0]
    assert (first.code, first.chain, first.height, first.tx_ids, first.entities) == (
        "wash_trade", "sse", 7, ("t-group",), ("P1", "P2"))
    assert first.facts["group"] == "G1" and first.facts["amount"] == "10500.00"


def test_related_party_trade_needs_relation_across_groups() -> None:
    def related(a: str, b: str) -> list[str]:
        return ["shared_person:X"] if {a, b} in ({"P1", "P3"}, {"P1", "P2"}) else []

    trades = [trade("t-rel", "ACC1", "ACC3"), trade("t-same-group", "ACC1", "ACC2"),
              trade("t-unrelated", "ACC3", "ACC4")]
    found = related_party_trades(trades, HOLDER, group_of, related)
    assert [(f.fingerprint, f.entities, f.facts["reasons"]) for f in found] == [
        ("related_party_trade:t-rel", ("P1", "P3"), ["shared_person:X"])]


# --- trade rings --------------------------------------------------------------------------------------


def ring(last_quantity: int = 1000, close_after: float = 20) -> list[Leg]:
    return [leg("r1", "A", "B", 1000, 0), leg("r2", "B", "C", 950, 5),
            leg("r3", "C", "A", last_quantity, close_after)]


def test_three_account_ring_fires_with_its_legs_in_order() -> None:
    (found,) = trade_rings(ring())
    assert found.code == "trade_ring"
    assert found.tx_ids == ("r1", "r2", "r3")
    assert found.fingerprint == f"trade_ring:{SEC}:r1,r2,r3"
    assert found.facts["accounts"] == ["A", "B", "C"] and found.facts["seconds"] == 1200


def test_ring_quantities_within_exactly_10_percent_count_and_11_percent_smaller_does_not() -> None:
    assert len(trade_rings(ring(last_quantity=900))) == 1
    assert len(trade_rings(ring(last_quantity=1100))) == 1
    assert trade_rings(ring(last_quantity=890)) == []


def test_ring_closing_at_30_minutes_counts_and_after_31_does_not() -> None:
    assert len(trade_rings(ring(close_after=30))) == 1
    assert trade_rings(ring(close_after=31)) == []


def test_two_accounts_trading_back_and_forth_are_not_a_ring() -> None:
    legs = [leg("x1", "A", "B", 1000, 0), leg("x2", "B", "A", 1000, 1), leg("x3", "A", "B", 1000, 2),
            leg("x4", "B", "A", 1000, 3)]
    assert trade_rings(legs) == []


def test_ring_legs_must_follow_in_time_and_stay_in_one_security() -> None:
    backwards = [leg("r1", "A", "B", 1000, 10), leg("r2", "B", "C", 1000, 5), leg("r3", "C", "A", 1000, 12)]
    assert trade_rings(backwards) == []
    mixed = [leg("r1", "A", "B", 1000, 0), leg("r2", "B", "C", 1000, 1, security="600001"),
             leg("r3", "C", "A", 1000, 2)]
    assert trade_rings(mixed) == []


def test_same_account_numbers_on_two_chains_do_not_make_a_ring_across_chains() -> None:
    # Account "X" exists on both chains (numbers are unique per chain only): no ring through it.
    across = [leg("c1", "X", "B", 1000, 0, chain="sse"), leg("c2", "B", "C", 1000, 5, chain="sse"),
              leg("c3", "C", "X", 1000, 10, chain="szse")]
    assert trade_rings(across) == []
    one_chain = [leg("c1", "X", "B", 1000, 0, chain="szse"), leg("c2", "B", "C", 1000, 5, chain="szse"),
                 leg("c3", "C", "X", 1000, 10, chain="szse")]
    (found,) = trade_rings(one_chain)
    assert found.tx_ids == ("c1", "c2", "c3") and found.chain == "szse"
    assert found.facts["accounts"] == ["X", "B", "C"]


def test_ring_must_include_a_new_leg_and_is_reported_once() -> None:
    legs = ring()
    assert trade_rings(legs, new_tx_ids=set()) == []
    assert len(trade_rings(legs, new_tx_ids={"r3"})) == 1
    simultaneous = [leg("s1", "A", "B", 1000, 0), leg("s2", "B", "C", 1000, 0), leg("s3", "C", "A", 1000, 0)]
    assert len(trade_rings(simultaneous)) == 1  # every rotation is the same ring


def test_ring_through_transfers_and_longer_rings_up_to_the_leg_limit() -> None:
    legs = [Trade("t1", "sse", 7, SEC, "B", "A", 500, Decimal("9"), T0).leg(),
            Transfer("t2", "sse", 8, SEC, "B", "C", 500, T0 + timedelta(minutes=1)).leg(),
            leg("t3", "C", "D", 500, 2), leg("t4", "D", "E", 500, 3), leg("t5", "E", "A", 500, 4)]
    (found,) = trade_rings(legs, holder_of={"A": "PA", "C": "PC"})
    assert found.tx_ids == ("t1", "t2", "t3", "t4", "t5") and found.entities == ("PA", "PC")
    assert (found.chain, found.height) == ("sse", 7)
    assert trade_rings(legs, max_legs=4) == []


def _rings_by_definition(legs: list[Leg], new: set[str], max_legs: int) -> set[frozenset[str]]:
    """Every set of legs that can be ordered into a ring as `trade_rings` defines one, by trying
    every ordering: one chain and security, each leg leaving where the last arrived and not
    earlier, back at the first account, ≥ 3 distinct accounts, within the window, quantities within
    10 % of the first leg's, and at least one new leg."""
    found: set[frozenset[str]] = set()
    for k in range(3, max_legs + 1):
        for path in itertools.permutations(legs, k):
            first, last = path[0], path[-1]
            if first.quantity <= 0 or last.at - first.at > timedelta(minutes=30):
                continue
            if len({(x.chain, x.security) for x in path}) != 1 or last.target != first.source:
                continue
            if any(a.target != b.source or b.at < a.at for a, b in itertools.pairwise(path)):
                continue
            if len({x.source for x in path}) != k or not {x.tx_id for x in path} & new:
                continue
            if all(abs(x.quantity - first.quantity) * 10 <= first.quantity for x in path):
                found.add(frozenset(x.tx_id for x in path))
    return found


_ring_legs = st.lists(
    st.tuples(st.sampled_from("ABCD"), st.sampled_from("ABCD"), st.sampled_from([889, 900, 1000, 1100, 1112]),
              st.integers(0, 40), st.sampled_from([SEC, "600001"]), st.sampled_from(["sse", "szse"]),
              st.booleans()),
    max_size=7)


@settings(max_examples=200, deadline=None)
@given(_ring_legs)
def test_ring_search_finds_exactly_the_rings_of_the_definition(
        spec: list[tuple[str, str, int, int, str, str, bool]]) -> None:
    legs = [leg(f"t{i}", a, b, q, m, security=s, chain=c) for i, (a, b, q, m, s, c, _) in enumerate(spec)]
    new = {f"t{i}" for i, item in enumerate(spec) if item[-1]}
    found = trade_rings(legs, new, max_legs=5)
    assert {frozenset(f.tx_ids) for f in found} == _rings_by_definition(legs, new, 5)
    assert len(found) == len({frozenset(f.tx_ids) for f in found})  # each ring once


def test_ring_search_leaves_no_garbage_for_the_cycle_collector() -> None:
    # The per-block task runs with the cyclic collector paused: what the search builds must be
    # freed by reference counting alone.
    gc.collect()
    gc.disable()
    try:
        (found,) = trade_rings(ring())
        assert found.tx_ids == ("r1", "r2", "r3")
        assert gc.collect() == 0
    finally:
        gc.enable()


def test_ring_search_has_a_budget() -> None:
    legs = [leg(f"m{i}", a, b, 1000, i * 0.01) for i, (a, b) in
            enumerate([(x, y) for x in "ABCDEFG" for y in "ABCDEFG" if x != y] * 3)]
    with pytest.raises(RingSearchBudgetExceeded) as err:
        trade_rings(legs, max_expansions=500)
    found = err.value.findings
    assert found, "the rings found before the budget ran out are handed back"
    for ring_found in found:
        accounts = ring_found.facts["accounts"]
        assert ring_found.code == "trade_ring" and len(accounts) == len(set(accounts)) >= 3
    # The search is deterministic: a larger budget finds these rings and more before it stops.
    with pytest.raises(RingSearchBudgetExceeded) as more:
        trade_rings(legs, max_expansions=2000)
    assert {f.fingerprint for f in found} < {f.fingerprint for f in more.value.findings}


# --- threshold crossings and disclosure --------------------------------------------------------------


def test_exactly_5_percent_crosses_and_4_99_does_not() -> None:
    total = {"ISS": 1_000_000}
    assert [c.step for c in threshold_crossings({}, {("G", "ISS"): 50_000}, total, at=T0)] == [1]
    assert threshold_crossings({}, {("G", "ISS"): 49_900}, total, at=T0) == []
    assert threshold_step_change(49_999, 50_000, 1_000_000) == (0, 1)
    assert threshold_step_change(50_000, 99_999, 1_000_000) is None


def test_each_step_crossed_counts_up_and_down() -> None:
    total = {"ISS": 1000}
    up = threshold_crossings({("G", "ISS"): 30}, {("G", "ISS"): 120}, total, at=T0, chain="sse", height=9)
    assert [(c.percent, c.direction) for c in up] == [(5, "up"), (10, "up")]
    assert up[0].fingerprint == "threshold_crossing:G:ISS:5%:up:sse:9"
    down = threshold_crossings({("G", "ISS"): 50}, {("G", "ISS"): 49}, total, at=T0)
    assert [(c.percent, c.direction) for c in down] == [(5, "down")]
    assert threshold_crossings({("G", "UNLISTED"): 0}, {("G", "UNLISTED"): 500}, total, at=T0) == []


def crossing() -> Crossing:
    return Crossing("G", "ISS", 1, "up", 0, 50, 1000, T0, "sse", 9, ("t1",))


def disclosure(holder: str = "P1", kind: str = "shareholding_change", days: float = 1,
               issuer: str = "ISS") -> Disclosure:
    return Disclosure("d1", issuer, holder, kind, T0 + timedelta(days=days))


def test_disclosure_within_3_days_by_a_group_member_settles_the_crossing() -> None:
    members = {"P1", "P2"}
    assert disclosure_due(T0) == T0 + timedelta(days=3)
    assert is_disclosed(crossing(), [disclosure(days=3)], members)
    assert is_disclosed(crossing(), [disclosure(days=-1 / 12)], members)  # dated earlier the same day
    assert not is_disclosed(crossing(), [disclosure(days=3.01)], members)
    assert not is_disclosed(crossing(), [disclosure(days=-0.5)], members)  # the day before
    assert not is_disclosed(crossing(), [disclosure(holder="P9")], members)
    assert not is_disclosed(crossing(), [disclosure(kind="periodic")], members)
    assert not is_disclosed(crossing(), [disclosure(issuer="OTHER")], members)
    finding = crossing_finding(crossing(), members)
    assert finding.code == "threshold_crossing" and finding.entities == ("G", "ISS", "P1", "P2")
    assert finding.facts["percent"] == 5


# --- stakes in securities firms ---------------------------------------------------------------------


def test_broker_stakes_above_two_firms_or_control_of_two_fire() -> None:
    fractions = {"G-three": {"B1": 0.05, "B2": 0.2, "B3": 0.06},
                 "G-two": {"B1": 0.3, "B2": 0.3, "B3": 0.0499},
                 "G-ctl": {"B1": 0.6, "B2": 0.6}, "G-one": {"B1": 0.6}}
    controlled = {"G-ctl": {"B1", "B2"}, "G-one": {"B1"}}
    found = broker_stake_findings(fractions, controlled, chain="sac", height=3)
    assert [f.fingerprint for f in found] == ["broker_stake_limit:G-ctl", "broker_stake_limit:G-three"]
    assert found[1].facts["firms_at_5_percent"] == 3 and found[1].entities == ("G-three", "B1", "B2", "B3")


def test_broker_stakes_from_the_graph_sum_members_direct_stakes() -> None:
    # Q has 80 % × 70 % = 56 % of BRK2 integratedly, so Q (not majority-owned) controls it.
    holdings = [Holding("Q", "SUB", 80, 100), Holding("Q", "BRK1", 3, 100), Holding("SUB", "BRK1", 3, 100),
                Holding("SUB", "BRK2", 70, 100), Holding("Z", "BRK3", 5, 100)]
    g = OwnershipGraph.build(holdings, {"Q": "person", "Z": "person"})
    groups = control_groups(g, [Role("BRK3", "Q", "actual_controller", True)], [])
    stakes, controlled = broker_stakes(g, groups, ["BRK1", "BRK2", "BRK3", "NOT-IN-GRAPH"])
    assert stakes["Q"] == pytest.approx({"BRK1": 0.06, "BRK2": 0.7})
    assert controlled == {"Q": {"BRK2", "BRK3"}}
    (finding,) = broker_stake_findings(stakes, controlled)
    assert finding.fingerprint == "broker_stake_limit:Q" and finding.facts["controlled"] == ["BRK2", "BRK3"]
