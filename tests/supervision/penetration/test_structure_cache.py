"""The per-process ownership structure follows the index exactly: a cached copy is brought up to
date from the rows written since, control groups are kept only when a change provably cannot move
control, and the materialised table follows."""

from __future__ import annotations

from datetime import timedelta

import pytest

from supervision import penetration
from supervision.analytics import ownership as own
from supervision.models import Alert, ControlGroupMember, ThresholdCrossing
from supervision.surveillance import block_analyse

pytestmark = pytest.mark.django_db

SECURITY = "600002"


def analyse(block):
    return block_analyse(chain_id=block["header"]["chain"], height=block["header"]["height"])


@pytest.fixture
def firms(ledger, ids):
    f = {"a": ids.org(), "b": ids.org(), "issuer": ids.org(), "broker": ids.org(), "p": ids.person(),
         "q": ids.person()}
    analyse(ledger.submit([
        ledger.register(f["a"], "org", "甲公司"), ledger.register(f["b"], "org", "乙公司"),
        ledger.register(f["p"], "person", "张三"), ledger.register(f["q"], "person", "李四"),
        ledger.listing(SECURITY, f["issuer"], 1_000_000),
        ledger.account("B0000001", f["a"], f["broker"]), ledger.account("B0000002", f["b"], f["broker"]),
        ledger.holding(f["p"], f["a"], 6000),  # P controls A (60 %)
        ledger.holding(f["p"], f["b"], 1000),  # and holds 10 % of B
    ]))
    return f


def group_of(entity: str) -> str | None:
    return ControlGroupMember.objects.filter(entity_id=entity).values_list("group_key", flat=True).first()


def test_small_stake_changes_keep_the_groups_and_their_token(ledger, firms):
    before = penetration.ownership_structure()
    analyse(ledger.submit([ledger.holding(firms["q"], firms["b"], 2000)]))  # Q: 20 % of B
    after = penetration.ownership_structure()
    assert after.groups_token == before.groups_token and after.base is not None
    assert after.graph.direct(firms["q"], firms["b"]) == pytest.approx(0.2)  # the graph is current
    assert penetration.build_structure().groups.group_of(firms["b"]) == after.groups.group_of(firms["b"])


def test_a_stake_crossing_half_moves_control_and_the_table(ledger, firms):
    assert group_of(firms["b"]) is None
    token = penetration.ownership_structure().groups_token
    analyse(ledger.submit([ledger.holding(firms["p"], firms["b"], 5100)]))  # P: 51 % of B
    structure = penetration.ownership_structure()
    assert structure.groups_token != token
    assert group_of(firms["b"]) == group_of(firms["a"]) == group_of(firms["p"])
    block = ledger.submit([ledger.trade(SECURITY, "B0000001", "B0000002", 100)])
    analyse(block)
    assert Alert.objects.filter(code="wash_trade").count() == 1


def test_losing_control_splits_the_group(ledger, firms):
    analyse(ledger.submit([ledger.holding(firms["p"], firms["a"], 4000)]))  # 60 % → 40 %
    assert group_of(firms["a"]) is None
    analyse(ledger.submit([ledger.trade(SECURITY, "B0000001", "B0000002", 100)]))
    assert not Alert.objects.filter(code="wash_trade").exists()


def test_cached_copy_equals_a_fresh_read_after_many_changes(ledger, firms, ids):
    persons = [ids.person() for _ in range(5)]
    for n, person in enumerate(persons):
        analyse(ledger.submit([ledger.holding(person, firms["b"], 100 * (n + 1)),
                               ledger.holding(person, firms["a"], 50 * (n + 1))]))
    analyse(ledger.submit([ledger.role(firms["b"], firms["q"])]))  # Q becomes B's actual controller
    cached, fresh = penetration.ownership_structure(), penetration.build_structure()
    assert cached.inputs.holdings == fresh.inputs.holdings and cached.inputs.roles == fresh.inputs.roles
    assert cached.groups.group_of(firms["b"]) == fresh.groups.group_of(firms["b"]) == group_of(firms["b"])
    assert group_of(firms["q"]) == group_of(firms["b"])


def test_changes_from_another_process_are_picked_up(ledger, firms):
    penetration.ownership_structure()
    ledger.submit([ledger.holding(firms["q"], firms["a"], 3000)])  # not analysed by "us"
    structure = penetration.ownership_structure()
    assert structure.graph.direct(firms["q"], firms["a"]) == pytest.approx(0.3)


def test_crossing_is_judged_as_of_its_block_when_analysis_lags(ledger, firms):
    fund = "B0000009"
    ledger.submit([ledger.account(fund, firms["q"], firms["broker"])])
    crossing = ledger.submit([ledger.trade(SECURITY, fund, "B0000001", 60_000)])  # A reaches 6 %
    ledger.advance(timedelta(minutes=1))
    ledger.submit([ledger.trade(SECURITY, "B0000001", fund, 60_000)])  # and sells it all again
    analyse(crossing)
    [row] = ThresholdCrossing.objects.all()
    assert (row.before_quantity, row.after_quantity, row.direction) == (0, 60_000, "up")


def test_a_role_change_recomputes_the_groups_on_the_same_matrix(ledger, firms):
    before = penetration.ownership_structure()
    before.groups  # noqa: B018 - settle it: graph, matrix and groups computed
    analyse(ledger.submit([ledger.role(firms["b"], firms["q"])]))  # Q becomes B's actual controller
    after = penetration.ownership_structure()
    assert after.graph is before.graph and after.matrix is before.matrix  # holdings unchanged
    assert after.groups_token != before.groups_token
    fresh = penetration.build_structure()
    assert after.groups.group_of(firms["b"]) == fresh.groups.group_of(firms["b"]) == group_of(firms["q"])
    assert group_of(firms["b"]) == group_of(firms["q"]) != group_of(firms["a"])


def test_a_kind_change_inside_the_graph_rebuilds_it(ledger, firms, ids):
    unregistered, overseas = ids.org(), "HK:C1234567"  # an org by the form of its id; unknown
    analyse(ledger.submit([ledger.holding(unregistered, firms["b"], 100),
                           ledger.holding(overseas, firms["b"], 200)]))
    before = penetration.ownership_structure()
    before.groups  # noqa: B018
    analyse(ledger.submit([ledger.register(unregistered, "org", "丙公司")]))  # the kind it had
    assert penetration.ownership_structure().graph is before.graph
    analyse(ledger.submit([ledger.chain.tx("entity_register", {  # unknown → org
        "id": overseas, "kind": "org", "name": "香港某公司", "id_type": "OTHER"})]))
    after = penetration.ownership_structure()
    assert after.graph is not before.graph
    was, now = before.graph.index[overseas], after.graph.index[overseas]
    assert (before.graph.kinds[was], after.graph.kinds[now]) == (own.UNKNOWN, own.ORG)


def test_an_account_reopened_for_another_holder_moves_between_holders(ledger, firms):
    """The per-block rules take the accounts' holders from the cached structure inputs: a reopened
    account follows its new holder there, as it does in the index, and its trades count for them."""
    analyse(ledger.submit([ledger.trade(SECURITY, "B0000002", "B0000001", 40)]))
    inputs = penetration.ownership_structure().inputs
    assert inputs.holders[("sse", "B0000001")] == firms["a"]
    assert inputs.accounts_of[firms["a"]] == (("sse", "B0000001"),)
    analyse(ledger.submit([ledger.account("B0000001", firms["b"], firms["broker"])]))
    inputs = penetration.ownership_structure().inputs
    assert inputs.holders[("sse", "B0000001")] == firms["b"]
    assert inputs.accounts_of[firms["a"]] == ()
    assert set(inputs.accounts_of[firms["b"]]) == {("sse", "B0000001"), ("sse", "B0000002")}
    fresh = penetration.build_structure().inputs
    assert fresh.holders == inputs.holders
    assert {h: set(a) for h, a in fresh.accounts_of.items() if a} == \
        {h: set(a) for h, a in inputs.accounts_of.items() if a}
    # B's two accounts trading with each other are one holder's now: a wash trade
    result = analyse(ledger.submit([ledger.trade(SECURITY, "B0000001", "B0000002", 10)]))
    assert result.findings == {"wash_trade": 1}


def test_a_later_listing_counts_for_its_issuer_and_a_relisting_moves_it(ledger, firms):
    """The per-block rules take the listings from the cached structure inputs: a second listing of
    the issuer in a later block adds its shares to the issuer's total and its positions to the
    holdings; a security listed again for another issuer moves with it, as in the index."""
    analyse(ledger.submit([ledger.listing("600003", firms["issuer"], 1_000_000)]))
    inputs = penetration.ownership_structure().inputs
    assert inputs.listings["600003"] == (firms["issuer"], 1_000_000)
    assert inputs.listings_of[firms["issuer"]] == {SECURITY, "600003"}
    # A (P's group) buys 40,000 + 70,000: 110,000 of 2,000,000 is 5.5 % (40,000 alone would be 4 %)
    result = analyse(ledger.submit([ledger.trade(SECURITY, "B0000002", "B0000001", 40_000),
                                    ledger.trade("600003", "B0000002", "B0000001", 70_000)]))
    assert result.crossings_opened == 1
    crossing = ThresholdCrossing.objects.get()
    assert (crossing.after_quantity, crossing.total_shares, crossing.step) == (110_000, 2_000_000, 1)
    analyse(ledger.submit([ledger.listing("600003", firms["b"], 500_000)]))
    inputs = penetration.ownership_structure().inputs
    assert inputs.listings_of[firms["issuer"]] == {SECURITY}
    assert inputs.listings_of[firms["b"]] == {"600003"}
    fresh = penetration.build_structure().inputs
    assert fresh.listings == inputs.listings
    assert {i: c for i, c in fresh.listings_of.items() if c} == \
        {i: c for i, c in inputs.listings_of.items() if c}
