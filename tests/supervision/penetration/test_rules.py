"""Every analytics rule through the real pipeline: blocks ingested with `block_submit` (SM2-signed),
then analysed by `block_analyse` as the worker does; each rule fires, and its near miss does not."""

from __future__ import annotations

import gc
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from businesschain.errors import NotFound
from supervision.models import Alert, ControlGroupMember, ThresholdCrossing
from supervision.surveillance import analytics_recompute, block_analyse

pytestmark = pytest.mark.django_db

SECURITY, TOTAL = "600001", 1_000_000


@pytest.fixture
def market(ledger, ids):
    """Group G: person P is actual controller of O1 and O2 (accounts A1, A2, A3 for P). Group H:
    person Q controls O3 (A4). O4 (A8) has no controller but shares director D with O1. Retail
    R1–R3 (A5–A7), a fund F (AF), brokers B1–B3. ISSUER is listed as 600001 with 1,000,000 shares."""
    m = {name: ids.org() for name in ("o1", "o2", "o3", "o4", "fund", "issuer", "b1", "b2", "b3")}
    m.update({name: ids.person() for name in ("p", "q", "d", "r1", "r2", "r3")})
    txs = [ledger.register(m[k], "org", f"机构{k.upper()}有限公司")
           for k in ("o1", "o2", "o3", "o4", "fund", "issuer")]
    txs += [ledger.register(m[k], "org", f"{k.upper()}证券股份有限公司") for k in ("b1", "b2", "b3")]
    txs += [ledger.register(m[k], "person", f"自然人{k.upper()}") for k in ("p", "q", "d", "r1", "r2", "r3")]
    txs += [ledger.listing(SECURITY, m["issuer"], TOTAL)]
    accounts = {"A0000001": "o1", "A0000002": "o2", "A0000003": "p", "A0000004": "o3", "A0000005": "r1",
                "A0000006": "r2", "A0000007": "r3", "A0000008": "o4", "A000000F": "fund"}
    txs += [ledger.account(a, m[h], m[("b1", "b2", "b3")[i % 3]])
            for i, (a, h) in enumerate(accounts.items())]
    txs += [ledger.role(m["o1"], m["p"]), ledger.role(m["o2"], m["p"]), ledger.role(m["o3"], m["q"]),
            ledger.role(m["o1"], m["d"], "director"), ledger.role(m["o4"], m["d"], "director")]
    block = ledger.submit(txs)
    analyse(block)
    return m


def analyse(block, **kwargs):
    header = block["header"]
    return block_analyse(chain_id=header["chain"], height=header["height"], **kwargs)


def alerts(code: str) -> list[Alert]:
    return list(Alert.objects.filter(code=code).order_by("id"))


# --- wash trades and related parties ---------------------------------------------------------

def test_control_groups_are_materialised(market):
    rows = dict(ControlGroupMember.objects.values_list("entity_id", "group_key"))
    assert rows[market["o1"]] == rows[market["o2"]] == rows[market["p"]]
    assert rows[market["o3"]] == rows[market["q"]] != rows[market["o1"]]
    assert market["o4"] not in rows


def test_wash_trade_inside_one_group_fires(ledger, market):
    block = ledger.submit([ledger.trade(SECURITY, "A0000001", "A0000002", 500)])
    result = analyse(block)
    [alert] = alerts("wash_trade")
    assert result.findings == {"wash_trade": 1}
    assert (alert.severity, alert.chain_id, alert.block_height) == ("high", "sse", block["header"]["height"])
    assert alert.tx_ids == [block["transactions"][0]["tx_id"]]
    assert set(alert.entities) == {market["o1"], market["o2"]}
    assert alert.title_zh.startswith("对倒交易：账户 A0000001 与 A0000002 同属控制组")
    assert alert.title_en.startswith("Wash trade: accounts A0000001 and A0000002 are in control group")
    assert "自然人P" in alert.title_zh and market["p"] not in alert.title_zh  # person ids masked
    assert not alerts("related_party_trade")


def test_trade_between_different_groups_is_not_a_wash_trade(ledger, market):
    analyse(ledger.submit([ledger.trade(SECURITY, "A0000001", "A0000004", 500)]))
    assert not alerts("wash_trade") and not alerts("related_party_trade")


def test_related_party_trade_fires_for_a_shared_director(ledger, market):
    block = ledger.submit([ledger.trade(SECURITY, "A0000001", "A0000008", 700)])
    analyse(block)
    [alert] = alerts("related_party_trade")
    assert alert.severity == "medium" and set(alert.entities) == {market["o1"], market["o4"]}
    assert any(r.startswith("shared_person:") for r in alert.evidence["facts"]["reasons"])
    assert alert.title_zh.startswith("关联方交易：") and alert.title_en.startswith("Related-party trade:")
    assert not alerts("wash_trade")


def test_related_party_trade_through_a_direct_stake_becomes_related_when_the_stake_appears(ledger, market):
    analyse(ledger.submit([ledger.trade(SECURITY, "A0000004", "A0000005", 100)]))
    assert not alerts("related_party_trade")
    analyse(ledger.submit([ledger.holding(market["r1"], market["o3"], 500, 10_000)]))  # 5 % of O3
    analyse(ledger.submit([ledger.trade(SECURITY, "A0000004", "A0000005", 100)]))
    [alert] = alerts("related_party_trade")
    assert set(alert.entities) == {market["o3"], market["r1"]}


# --- trade rings ------------------------------------------------------------------------------

def test_three_account_ring_across_blocks_fires(ledger, market):
    analyse(ledger.submit([ledger.trade(SECURITY, "A0000005", "A0000006", 10_000)]))
    ledger.advance(timedelta(minutes=10))
    analyse(ledger.submit([ledger.trade(SECURITY, "A0000006", "A0000007", 10_500)]))
    ledger.advance(timedelta(minutes=10))
    last = ledger.submit([ledger.transfer(SECURITY, "A0000007", "A0000005", 9_000)])
    analyse(last)
    [alert] = alerts("trade_ring")
    assert alert.evidence["facts"]["accounts"] == ["A0000005", "A0000006", "A0000007"]
    assert alert.block_height == last["header"]["height"] and len(alert.tx_ids) == 3
    assert set(alert.entities) == {market["r1"], market["r2"], market["r3"]}
    assert alert.title_zh == f"环形交易：证券 {SECURITY} 经 3 个账户回到起点"


def test_ring_through_a_transfer_among_competing_first_legs_fires_once(ledger, market):
    analyse(ledger.submit([ledger.trade(SECURITY, "A0000005", "A0000006", 10_000),
                           ledger.trade(SECURITY, "A0000005", "A0000007", 10_000)]))
    analyse(ledger.submit([ledger.transfer(SECURITY, "A0000006", "A0000007", 9_500)]))
    analyse(ledger.submit([ledger.trade(SECURITY, "A0000007", "A0000005", 10_400)]))
    assert [a.evidence["facts"]["accounts"] for a in alerts("trade_ring")] == [
        ["A0000005", "A0000006", "A0000007"]]


def test_same_account_numbers_on_another_chain_do_not_close_a_ring(ledger, market):
    from tests.supervision.penetration.conftest import Ledger

    szse = Ledger("szse")  # A0000005 and A0000007 on szse are other people's accounts
    szse.submit([szse.account("A0000005", market["o3"], market["b1"]),
                 szse.account("A0000007", market["o4"], market["b1"])])
    analyse(ledger.submit([ledger.trade(SECURITY, "A0000005", "A0000006", 10_000)]))
    analyse(ledger.submit([ledger.trade(SECURITY, "A0000006", "A0000007", 10_000)]))
    analyse(szse.submit([szse.transfer(SECURITY, "A0000007", "A0000005", 10_000)]))
    assert not alerts("trade_ring")
    last = ledger.submit([ledger.transfer(SECURITY, "A0000007", "A0000005", 10_000)])  # same legs, one chain
    analyse(last)
    [alert] = alerts("trade_ring")
    assert alert.chain_id == "sse" and alert.block_height == last["header"]["height"]
    assert alert.evidence["facts"]["accounts"] == ["A0000005", "A0000006", "A0000007"]
    assert set(alert.entities) == {market["r1"], market["r2"], market["r3"]}


def test_ring_whose_last_leg_is_11_percent_smaller_does_not_fire(ledger, market):
    analyse(ledger.submit([ledger.trade(SECURITY, "A0000005", "A0000006", 10_000)]))
    analyse(ledger.submit([ledger.trade(SECURITY, "A0000006", "A0000007", 10_000)]))
    analyse(ledger.submit([ledger.trade(SECURITY, "A0000007", "A0000005", 8_900)]))
    assert not alerts("trade_ring")


def test_ring_slower_than_30_minutes_does_not_fire(ledger, market):
    analyse(ledger.submit([ledger.trade(SECURITY, "A0000005", "A0000006", 10_000)]))
    ledger.advance(timedelta(minutes=31))
    analyse(ledger.submit([ledger.trade(SECURITY, "A0000006", "A0000007", 10_000),
                           ledger.trade(SECURITY, "A0000007", "A0000005", 10_000)]))
    assert not alerts("trade_ring")


# --- threshold crossings ----------------------------------------------------------------------

def buy_five_percent(ledger, quantity_o1: int = 30_000, quantity_o2: int = 20_000):
    return ledger.submit([ledger.trade(SECURITY, "A000000F", "A0000001", quantity_o1),
                          ledger.trade(SECURITY, "A000000F", "A0000002", quantity_o2)])


def test_threshold_crossing_without_disclosure_fires_once_due(ledger, market):
    crossing_block = buy_five_percent(ledger)  # 50,000 of 1,000,000 over two accounts: 5 %
    result = analyse(crossing_block)
    assert result.crossings_opened == 1 and not alerts("threshold_crossing")
    [pending] = ThresholdCrossing.objects.all()
    assert (pending.status, pending.step, pending.direction) == ("pending", 1, "up")
    assert pending.after_quantity == 50_000
    assert set(pending.members) == {market["p"], market["o1"], market["o2"]}
    ledger.advance(timedelta(days=2))
    analyse(ledger.submit([ledger.disclosure(market["issuer"], market["o1"], kind="periodic")]))
    assert not alerts("threshold_crossing")  # not due yet; a periodic report does not count
    ledger.advance(timedelta(days=1, hours=1))
    later = analyse(ledger.submit([]))
    assert later.crossings_alerted == 1
    [alert] = alerts("threshold_crossing")
    assert alert.severity == "high" and alert.block_height == crossing_block["header"]["height"]
    assert {market["p"], market["o1"], market["o2"], market["issuer"]} <= set(alert.entities)
    assert len(alert.tx_ids) == 2 and alert.evidence["facts"]["percent"] == 5
    assert "5%" in alert.title_en and "未披露" in alert.title_zh
    pending.refresh_from_db()
    assert pending.status == "alerted" and pending.alert_id == alert.pk
    analyse(ledger.submit([]))
    assert Alert.objects.filter(code="threshold_crossing").count() == 1


def test_threshold_crossing_with_disclosure_within_3_days_does_not_fire(ledger, market):
    analyse(buy_five_percent(ledger))
    ledger.advance(timedelta(days=2))
    result = analyse(ledger.submit([ledger.disclosure(market["issuer"], market["o2"])]))
    assert result.crossings_disclosed == 1
    ledger.advance(timedelta(days=2))
    analyse(ledger.submit([]))
    assert not alerts("threshold_crossing")
    assert ThresholdCrossing.objects.get().status == "disclosed"


def test_disclosure_after_the_window_does_not_count(ledger, market):
    analyse(buy_five_percent(ledger))
    ledger.advance(timedelta(days=3, hours=1))
    analyse(ledger.submit([ledger.disclosure(market["issuer"], market["o2"])]))
    assert len(alerts("threshold_crossing")) == 1


def test_holding_just_under_five_percent_is_no_crossing(ledger, market):
    result = analyse(buy_five_percent(ledger, 30_000, 19_900))
    assert result.crossings_opened == 0 and not ThresholdCrossing.objects.exists()


def test_selling_out_below_five_percent_is_a_crossing_down(ledger, market):
    analyse(buy_five_percent(ledger))  # O1 30,000 + O2 20,000 = 5 %
    sell_out = ledger.submit([ledger.trade(SECURITY, "A0000001", "A000000F", 30_000)])  # O1 sells it all
    result = analyse(sell_out)
    assert result.crossings_opened == 1
    down = ThresholdCrossing.objects.get(direction="down")
    assert (down.step, down.before_quantity, down.after_quantity) == (1, 50_000, 20_000)
    assert down.height == sell_out["header"]["height"]


def test_crossing_counts_positions_on_every_chain(ledger, market):
    from tests.supervision.penetration.conftest import Ledger

    szse = Ledger("szse")
    szse.submit([szse.account("A0000009", market["p"], market["b1"]),
                 szse.account("A000000G", market["fund"], market["b1"])])
    analyse(szse.submit([szse.trade(SECURITY, "A000000G", "A0000009", 20_000)]))  # 2 % on szse
    block = ledger.submit([ledger.trade(SECURITY, "A000000F", "A0000001", 30_000),  # +3 %
                           ledger.trade(SECURITY, "A0000005", "A0000006", 100)])  # retail, not G
    result = analyse(block)
    assert result.crossings_opened == 1
    crossing = ThresholdCrossing.objects.get()
    assert crossing.before_quantity == 20_000
    assert crossing.tx_ids == [block["transactions"][0]["tx_id"]]  # G's transaction only


# --- structure rules --------------------------------------------------------------------------

def test_broker_stake_limit_fires_for_three_firms(ledger, market):
    block = ledger.submit([ledger.holding(market["o1"], market["b1"], 600),
                           ledger.holding(market["o2"], market["b2"], 500),
                           ledger.holding(market["p"], market["b3"], 500)])
    analyse(block)
    [alert] = alerts("broker_stake_limit")
    assert alert.severity == "medium" and alert.fingerprint == f"broker_stake_limit:{market['p']}"
    assert set(alert.evidence["facts"]["stakes"]) == {market["b1"], market["b2"], market["b3"]}
    assert alert.title_zh.startswith("证券公司股权超限")


def test_broker_stake_just_under_five_percent_in_the_third_firm_does_not_fire(ledger, market):
    analyse(ledger.submit([ledger.holding(market["o1"], market["b1"], 600),
                           ledger.holding(market["o2"], market["b2"], 500),
                           ledger.holding(market["p"], market["b3"], 499)]))
    assert not alerts("broker_stake_limit")


def test_circular_holding_fires_when_a_shareholding_closes_the_cycle(ledger, market):
    analyse(ledger.submit([ledger.holding(market["o3"], market["o4"], 3000)]))
    assert not alerts("circular_holding")
    block = ledger.submit([ledger.holding(market["o4"], market["o3"], 2000)])
    analyse(block)
    [alert] = alerts("circular_holding")
    assert alert.tx_ids == [block["transactions"][0]["tx_id"]]
    assert set(alert.entities) == {market["o3"], market["o4"]}
    assert "30.00%" in alert.detail_zh + alert.detail_en
    analyse(ledger.submit([ledger.role(market["o4"], market["r1"], "director")]))  # untouched cycle
    assert Alert.objects.get(code="circular_holding").occurrences == 1


# --- idempotence, cost, recompute -------------------------------------------------------------

def test_reanalysing_a_block_does_not_duplicate_alerts(ledger, market):
    block = ledger.submit([ledger.trade(SECURITY, "A0000001", "A0000002", 500),
                           ledger.holding(market["o3"], market["o4"], 3000),
                           ledger.holding(market["o4"], market["o3"], 3000)])
    first = analyse(block)
    second = analyse(block)
    assert first.alerts_created == 2 and second.alerts_created == 0 and second.alerts_repeated == 2
    assert Alert.objects.count() == 2
    assert set(Alert.objects.values_list("occurrences", flat=True)) == {2}


def test_analysing_a_block_that_is_not_stored_is_not_found_and_writes_nothing(ledger, market):
    with pytest.raises(NotFound) as missing:
        block_analyse(chain_id="sse", height=999)
    assert missing.value.code == "unknown_block"
    assert not ThresholdCrossing.objects.exists() and not Alert.objects.exists()


def test_query_count_does_not_grow_with_block_size(ledger, market):
    def queries(trades: int) -> int:
        block = ledger.submit([ledger.trade(SECURITY, "A000000F", f"A000000{5 + i % 3}", 100)
                               for i in range(trades)])
        with CaptureQueriesContext(connection) as captured:
            analyse(block)
        return len(captured.captured_queries)

    small, large = queries(5), queries(300)
    assert small == large, (small, large)
    assert large <= 30


def test_raising_a_blocks_alerts_takes_the_same_queries_for_2_or_40_findings(ledger, market):
    def queries(trades: int) -> tuple[int, int]:
        block = ledger.submit([ledger.trade(SECURITY, "A0000001", "A0000002", 100 + i)
                               for i in range(trades)])
        with CaptureQueriesContext(connection) as first:
            raised = analyse(block)
        with CaptureQueriesContext(connection) as again:
            repeated = analyse(block)
        assert (raised.alerts_created, repeated.alerts_repeated) == (trades, trades)  # one wash trade each
        return len(first.captured_queries), len(again.captured_queries)

    few, many = queries(2), queries(40)
    assert few == many, (few, many)
    assert max(many) <= 35
    assert Alert.objects.filter(code="wash_trade", occurrences=2).count() == 42


def test_analysing_a_block_leaves_no_garbage_for_the_cycle_collector(ledger, market):
    # block_analyse pauses the cyclic collector: everything it builds must go by reference counting.
    analyse(ledger.submit([ledger.trade(SECURITY, "A0000005", "A0000006", 10_000)]))
    analyse(ledger.submit([ledger.trade(SECURITY, "A0000006", "A0000007", 10_000)]))
    block = ledger.submit([ledger.trade(SECURITY, "A0000007", "A0000005", 10_000),  # closes a ring
                           ledger.trade(SECURITY, "A0000001", "A0000002", 500),  # wash trade
                           ledger.trade(SECURITY, "A000000F", "A0000001", 60_000),  # crosses 5 %
                           ledger.holding(market["o3"], market["o4"], 3000)])  # structure rebuilt
    gc.collect()
    gc.disable()
    try:
        result = analyse(block)
        garbage = gc.collect()
    finally:
        gc.enable()
    assert result.findings == {"trade_ring": 1, "wash_trade": 1} and result.crossings_opened == 1
    assert result.structure_rebuilt
    assert garbage == 0


def test_recompute_rebuilds_without_duplicating(ledger, market):
    analyse(ledger.submit([ledger.trade(SECURITY, "A0000001", "A0000002", 500)]))
    analyse(buy_five_percent(ledger))
    ThresholdCrossing.objects.all().delete()
    ControlGroupMember.objects.all().delete()
    progress = []
    report = analytics_recompute(progress=lambda done, total: progress.append((done, total)),
                                 now=ledger.clock + timedelta(days=4))
    assert progress[-1][0] == progress[-1][1] == report.blocks
    assert ControlGroupMember.objects.filter(entity_id=market["o1"]).exists()
    assert report.crossings == 1 and report.crossings_alerted == 1
    assert Alert.objects.filter(code="wash_trade").count() == 1
    assert Alert.objects.get(code="wash_trade").occurrences == 1  # left as it was
    assert Alert.objects.filter(code="threshold_crossing").count() == 1
    again = analytics_recompute(now=ledger.clock + timedelta(days=4))
    assert again.alerts_created == 0 and Alert.objects.count() == 2


def test_recompute_command_draws_a_progress_bar_on_stderr(ledger, market, capsys):
    call_command("recompute_analytics")
    captured = capsys.readouterr()
    assert "recompute_analytics 100%" in captured.err
    assert captured.out.startswith("recomputed ")
