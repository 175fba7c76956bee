"""Ownership and control (supervision API §1): known answers, near misses and bad data."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from supervision.analytics.ownership import (
    ConcertParty,
    Holding,
    OwnershipDataError,
    OwnershipGraph,
    RelatedParties,
    Role,
    beneficial_owners,
    beneficial_owners_all,
    circular_holding_findings,
    control_groups,
    find_cycles,
    integrated_error_bound,
    integrated_matrix,
    integrated_owners_of,
    ownership_paths,
    subgraph_around,
    ultimate_controller,
)

from .exact import exact_integrated, simple_path_sum

H = Holding


def pct(holder: str, issuer: str, percent: str) -> Holding:
    """A holding given as an exact percentage string, e.g. "24.99"."""
    f = Fraction(percent) / 100
    return H(holder, issuer, f.numerator * 1000, f.denominator * 1000)


def graph_of(holdings: list[Holding], persons: set[str], *, scale: bool = False) -> OwnershipGraph:
    ids = {h.holder for h in holdings} | {h.issuer for h in holdings}
    return OwnershipGraph.build(holdings, {x: "person" if x in persons else "org" for x in ids},
                                oversubscribed="scale" if scale else "raise")


def dense(graph: OwnershipGraph) -> np.ndarray:
    return integrated_matrix(graph).toarray()


# --- integrated ownership ----------------------------------------------------------------------

CROSS = [pct("P", "A", "22"), pct("B", "A", "60"), pct("A", "B", "70"), pct("Q", "B", "30")]


def test_cross_holding_integrated_ownership_equals_exact_fractions() -> None:
    g = graph_of(CROSS, {"P", "Q"})
    exact = exact_integrated(g.ids, CROSS)
    # Closed form: P's 22 % of A is amplified by the A↔B loop, 1 / (1 − 0.6 × 0.7).
    assert exact[("P", "A")] == Fraction(22, 100) / (1 - Fraction(42, 100)) == Fraction(11, 29)
    assert exact[("P", "B")] == Fraction(11, 29) * Fraction(7, 10)
    m = dense(g)
    for (x, y), value in exact.items():
        assert m[g.index[x], g.index[y]] == pytest.approx(float(value), abs=1e-12)
    assert np.count_nonzero(m) == len(exact)
    owners_of_a = integrated_owners_of(g, "A")
    assert owners_of_a == pytest.approx({x: float(exact[(x, "A")]) for x in ("P", "Q", "B")}, abs=1e-12)


def test_plain_path_enumeration_is_wrong_with_cross_holdings_and_misses_the_beneficial_owner() -> None:
    g = graph_of(CROSS, {"P", "Q"})
    naive = simple_path_sum(CROSS, "P", "A")
    assert naive == Fraction(22, 100)  # below 25 %: path enumeration would report no owner
    assert float(naive) < 0.25 < integrated_owners_of(g, "A")["P"]
    assert [b.id for b in beneficial_owners(g, "A", [])] == ["P", "Q"]
    # Q reaches A only through the loop: 30 % × 60 % = 18 % by simple paths, 31.0 % really.
    assert simple_path_sum(CROSS, "Q", "A") == Fraction(18, 100)
    assert integrated_owners_of(g, "A")["Q"] == pytest.approx(0.18 / 0.58)


def test_self_holding_follows_the_geometric_series() -> None:
    holdings = [pct("A", "A", "10"), pct("P", "A", "45")]
    g = graph_of(holdings, {"P"})
    # 45 % × (1 + 10 % + 10 %² + …) = 45 % / 90 % = 50 %
    assert dense(g)[g.index["P"], g.index["A"]] == pytest.approx(0.5, abs=1e-15)
    assert dense(g)[g.index["A"], g.index["A"]] == pytest.approx(0.1 / 0.9)
    assert integrated_owners_of(g, "A") == pytest.approx({"P": 0.5})


def test_unknown_entities_have_empty_answers() -> None:
    g = graph_of(CROSS, {"P", "Q"})
    assert integrated_owners_of(g, "NOBODY") == {}
    assert integrated_owners_of(g, "P") == {}  # nobody holds a person


def test_pruned_matrix_is_a_lower_bound_within_the_stated_error() -> None:
    rng = np.random.default_rng(3)
    holdings = []
    for j in range(40):
        holders = rng.choice(60, 3, replace=False)
        for i, share in zip(holders, rng.integers(1, 30, 3), strict=True):
            holdings.append(H(f"E{i:02d}", f"E{j:02d}", int(share), 100))
    g = graph_of(holdings, {f"E{i:02d}" for i in range(40, 60)})
    full = integrated_matrix(g).toarray()
    pruned = integrated_matrix(g, prune=1e-4).toarray()
    bound = integrated_error_bound(g, 1e-4)
    assert np.all(pruned <= full + 1e-15)
    assert np.all(full - pruned <= bound)
    assert np.count_nonzero(pruned) < np.count_nonzero(full)


# --- beneficial owners --------------------------------------------------------------------------


def test_exactly_25_percent_is_a_beneficial_owner_and_24_99_is_not() -> None:
    holdings = [pct("P1", "T", "25"), pct("P2", "T", "24.99"), pct("P3", "T", "30")]
    g = graph_of(holdings, {"P1", "P2", "P3"})
    owners = beneficial_owners(g, "T", [])
    assert [(b.id, b.reasons) for b in owners] == [("P3", ("ownership",)), ("P1", ("ownership",))]
    assert owners[1].share == pytest.approx(0.25) and owners[1].direct == pytest.approx(0.25)


def test_25_percent_reached_only_through_a_path_product_counts() -> None:
    holdings = [pct("P", "H", "50"), pct("H", "T", "50"), pct("R", "H2", "49.99"), pct("H2", "T2", "50")]
    g = graph_of(holdings, {"P", "R"})
    owners = beneficial_owners(g, "T", [])
    assert [(b.id, b.share, b.direct) for b in owners] == [("P", 0.25, 0.0)]
    assert beneficial_owners(g, "T2", []) == []  # 49.99 % × 50 % = 24.995 %


def test_actual_controller_is_a_beneficial_owner_without_shares_while_active() -> None:
    holdings = [pct("P", "T", "30"), pct("ORGX", "T", "60")]
    g = graph_of(holdings, {"P"})
    roles = [Role("T", "C", "actual_controller", True), Role("T", "D", "actual_controller", False),
             Role("T", "P", "actual_controller", True)]
    owners = beneficial_owners(g, "T", roles)
    assert [(b.id, b.reasons) for b in owners] == [
        ("P", ("ownership", "actual_controller")), ("C", ("actual_controller",))]
    assert all(b.id != "ORGX" for b in owners)  # organisations are never beneficial owners


def test_beneficial_owners_of_every_org_agree_with_the_one_org_answer() -> None:
    rng = np.random.default_rng(11)
    holdings = []
    for j in range(30):
        for i, share in zip(rng.choice(50, 3, replace=False), rng.integers(5, 33, 3), strict=True):
            if i != j:
                holdings.append(H(f"E{i:02d}", f"E{j:02d}", int(share), 100))
    persons = {f"E{i:02d}" for i in range(30, 50)}
    g = graph_of(holdings, persons)
    roles = [Role("E03", "E40", "actual_controller", True)]
    everything = beneficial_owners_all(g, roles)
    for org in (f"E{j:02d}" for j in range(30)):
        one = beneficial_owners(g, org, roles)
        assert [(b.id, b.reasons) for b in everything.get(org, [])] == [(b.id, b.reasons) for b in one]
        for a, b in zip(everything.get(org, []), one, strict=True):
            assert a.share == pytest.approx(b.share, abs=1e-12) and a.direct == pytest.approx(b.direct)


def test_owners_with_equal_shares_come_by_id_in_both_computations() -> None:
    # P1 is indexed before P0 (it holds first), and all four owners tie at 25 % of T
    g = graph_of([pct("P1", "T", "25"), pct("P2", "T", "25"), pct("P0", "T", "25"), pct("P3", "T", "25")],
                 {"P0", "P1", "P2", "P3"})
    assert [b.id for b in beneficial_owners(g, "T", [])] == ["P0", "P1", "P2", "P3"]
    assert [b.id for b in beneficial_owners_all(g, [])["T"]] == ["P0", "P1", "P2", "P3"]


# --- controllers and groups ---------------------------------------------------------------------


def test_actual_controller_role_decides_before_ownership() -> None:
    g = graph_of([pct("Q", "T", "80")], {"Q"})
    assert ultimate_controller(g, "T", [Role("T", "C", "actual_controller", True)]) == "C"
    assert ultimate_controller(g, "T", [Role("T", "C", "actual_controller", False)]) == "Q"


def test_controller_is_the_majority_owner_that_nobody_owns_a_majority_of() -> None:
    g = graph_of([pct("Q", "H", "60"), pct("H", "T", "60"), pct("Z", "H", "40")], {"Q", "Z"})
    # The spec's definition, not a chain of control: T's only > 0.5 owner is H, which Q owns
    # > 0.5, and Q's 36 % of T is not > 0.5: T has no ultimate controller.
    assert ultimate_controller(g, "T", []) is None
    assert ultimate_controller(g, "H", []) == "Q"
    assert ultimate_controller(g, "Q", []) is None
    # With 80 % at both steps Q has 64 % of T integratedly and H is excluded: Q controls T.
    g = graph_of([pct("Q", "H", "80"), pct("H", "T", "80")], {"Q"})
    assert ultimate_controller(g, "T", []) == "Q"


def test_an_actual_controller_of_the_parent_does_not_control_the_subsidiary() -> None:
    g = graph_of([pct("H", "T", "70")], set())
    roles = [Role("H", "P", "actual_controller", True)]
    assert ultimate_controller(g, "H", roles) == "P"
    assert ultimate_controller(g, "T", roles) == "H"  # H is not *owned* > 0.5 by anyone
    groups = control_groups(g, roles, [])
    assert groups.controller_of("T") == "H" and groups.controller_of("H") == "P"
    assert groups.group_of("T") == groups.group_of("P")


def test_exactly_half_is_not_control_and_a_hair_more_is() -> None:
    g = graph_of([pct("Q", "T", "50"), pct("R", "U", "50.01")], {"Q", "R"})
    assert ultimate_controller(g, "T", []) is None
    assert ultimate_controller(g, "U", []) == "R"


def test_majority_through_two_paths_counts_and_mutual_control_has_no_top() -> None:
    g = graph_of([pct("Q", "T", "30"), pct("Q", "S", "100"), pct("S", "T", "30"),
                  pct("A", "B", "60"), pct("B", "A", "60"), pct("B", "C", "70")], {"Q"})
    assert ultimate_controller(g, "T", []) == "Q"
    assert ultimate_controller(g, "C", []) is None  # B ← A ← B …: a control cycle, no top entity


def test_several_actual_controllers_pick_the_largest_share_then_id() -> None:
    g = graph_of([pct("C2", "T", "10")], {"C2"})
    roles = [Role("T", "C1", "actual_controller", True), Role("T", "C2", "actual_controller", True),
             Role("U", "C9", "actual_controller", True), Role("U", "C8", "actual_controller", True)]
    assert ultimate_controller(g, "T", roles) == "C2"
    assert ultimate_controller(g, "U", roles) == "C8"


def test_control_groups_join_controlled_entities_and_active_concert_parties_only() -> None:
    holdings = [pct("Q", "H", "80"), pct("H", "T", "80"), pct("R", "U", "70"), pct("S", "V", "70"),
                pct("X", "Y", "20")]
    g = graph_of(holdings, {"Q", "R", "S", "X"})
    parties = [ConcertParty("T", ("R", "Q"), True), ConcertParty("V", ("S", "X"), False)]
    groups = control_groups(g, [Role("W", "Q", "actual_controller", True)], parties)
    assert groups.members(groups.group_of("T")) == {"Q", "H", "T", "W", "R", "U"}
    assert groups.group_of("T") == "Q"  # the smallest id among the group's heads (Q and R)
    assert groups.controller_of("T") == "Q" and groups.controller_of("U") == "R"
    assert groups.controller_of("W") == "Q"
    assert groups.group_of("V") == groups.group_of("S") != groups.group_of("X")
    assert groups.group_of("Y") == "Y"  # 20 % is no control: a group of its own
    assert groups.group_of("NEVER-SEEN") == "NEVER-SEEN"
    assert groups.members("NEVER-SEEN") == {"NEVER-SEEN"}
    # the dict views the per-block rules read say the same
    for entity in ("Q", "H", "T", "W", "R", "U", "S", "V", "X", "Y", "NEVER-SEEN"):
        group = groups.group_by_entity.get(entity, entity)
        assert group == groups.group_of(entity)
        assert groups.members_by_group.get(group, frozenset({group})) == groups.members(group)


def test_mutually_owning_orgs_have_no_ultimate_controller_and_so_no_shared_group() -> None:
    g = graph_of([pct("A", "B", "60"), pct("B", "A", "60"), pct("B", "C", "70")], set())
    groups = control_groups(g, [], [])
    # Every > 0.5 owner here is itself owned > 0.5 by someone else: nobody controls anybody, so by
    # the spec's definition no two of them share an ultimate controller.
    assert [groups.controller_of(x) for x in "ABC"] == [None, None, None]
    assert len({groups.group_of(x) for x in "ABC"}) == 3


# --- related parties ------------------------------------------------------------------------------


def test_related_parties_by_group_shared_person_and_direct_stake_with_near_misses() -> None:
    holdings = [pct("A", "B", "5"), pct("C", "D", "4.99"), pct("Q", "E", "60"), pct("Q", "F", "60")]
    g = graph_of(holdings, {"Q"})
    roles = [Role("A", "P", "director", True), Role("C", "P", "supervisor", True),
             Role("D", "P2", "director", True), Role("G", "P2", "director", False)]
    groups = control_groups(g, roles, [])
    related = RelatedParties(g, groups, roles)
    assert related("A", "B") == ["direct_stake:A>B:0.050000"]
    assert related("C", "D") == []  # 4.99 % direct, no shared person
    assert related("A", "C") == ["shared_person:P"]
    assert related("P", "C") == ["shared_person:P"]  # a person is linked to where they hold a role
    assert related("D", "G") == []  # P2's role in G is inactive
    assert related("E", "F") == ["same_group"]
    # Only entities with a role, a person in one, or a direct stake can be related across groups.
    assert [x for x in ("A", "B", "P", "C", "G", "NOBODY") if related.may_relate(x)] == ["A", "B", "P", "C"]


# --- explanations ---------------------------------------------------------------------------------


def test_ownership_paths_come_largest_product_first_and_respect_depth_and_limit() -> None:
    holdings = [pct("P", "A", "50"), pct("A", "T", "40"), pct("P", "B", "90"), pct("B", "T", "20"),
                pct("P", "C", "10"), pct("C", "D", "50"), pct("D", "T", "10")]
    g = graph_of(holdings, {"P"})
    paths = ownership_paths(g, "P", "T")
    assert [p.nodes for p in paths] == [("P", "A", "T"), ("P", "B", "T"), ("P", "C", "D", "T")]
    assert paths[0].fractions == pytest.approx((0.5, 0.4)) and paths[0].product == pytest.approx(0.2)
    assert [p.nodes for p in ownership_paths(g, "P", "T", max_depth=2)] == [("P", "A", "T"), ("P", "B", "T")]
    assert len(ownership_paths(g, "P", "T", limit=1)) == 1
    assert ownership_paths(g, "T", "P") == []


def test_find_cycles_reports_each_loop_once_rotated_to_its_smallest_id() -> None:
    holdings = [pct("ORG-C", "ORG-A", "10"), pct("ORG-A", "ORG-B", "10"), pct("ORG-B", "ORG-C", "10"),
                pct("ORG-Z", "ORG-Z", "5"), pct("P", "ORG-A", "50"), pct("ORG-A", "ORG-Y", "30")]
    g = graph_of(holdings, {"P"})
    cycles = find_cycles(g)
    assert [c.orgs for c in cycles] == [("ORG-A", "ORG-B", "ORG-C"), ("ORG-Z",)]
    assert cycles[0].fingerprint == "circular_holding:ORG-A>ORG-B>ORG-C"
    assert cycles[0].fractions == pytest.approx((0.1, 0.1, 0.1))
    # The same holdings in another order give the same fingerprints.
    again = find_cycles(graph_of(list(reversed(holdings)), {"P"}))
    assert [c.fingerprint for c in again] == [c.fingerprint for c in cycles]
    finding = circular_holding_findings(cycles[:1], chain="sse", height=7, tx_ids=["t1"])[0]
    assert (finding.code, finding.chain, finding.height, finding.entities) == (
        "circular_holding", "sse", 7, ("ORG-A", "ORG-B", "ORG-C"))


def test_acyclic_holdings_have_no_circular_holding() -> None:
    g = graph_of([pct("A", "B", "60"), pct("B", "C", "60"), pct("A", "C", "30")], set())
    assert find_cycles(g) == []


def test_a_strongly_connected_group_yields_its_shortest_cycle_through_the_smallest_id() -> None:
    holdings = [pct("A", "B", "5"), pct("B", "C", "5"), pct("C", "D", "5"), pct("D", "A", "5"),
                pct("C", "A", "5")]
    (cycle,) = find_cycles(graph_of(holdings, set()))
    assert cycle.orgs == ("A", "B", "C") and cycle.members == ("A", "B", "C", "D")


def test_subgraph_around_is_bounded_by_depth_and_node_count() -> None:
    holdings = [pct("P", "A", "50"), pct("A", "B", "50"), pct("B", "C", "50"), pct("Q", "A", "10")]
    g = graph_of(holdings, {"P", "Q"})
    near = subgraph_around(g, "A", depth=1)
    assert [n["id"] for n in near["nodes"]] == ["A", "B", "P", "Q"]
    assert {(e["source"], e["target"]) for e in near["edges"]} == {("P", "A"), ("A", "B"), ("Q", "A")}
    small = subgraph_around(g, "A", depth=3, max_nodes=2)
    assert len(small["nodes"]) == 2 and small["truncated"] is True
    assert subgraph_around(g, "NOBODY")["nodes"] == []


# --- bad data ----------------------------------------------------------------------------------------


def test_holders_over_100_percent_raise_or_are_scaled_on_request() -> None:
    holdings = [pct("P", "T", "70"), pct("Q", "T", "40")]
    with pytest.raises(OwnershipDataError) as err:
        graph_of(holdings, {"P", "Q"})
    assert err.value.extra["issuers"] == ["T"]
    g = graph_of(holdings, {"P", "Q"}, scale=True)
    assert g.direct("P", "T") == pytest.approx(0.7 / 1.1) and g.scaled_issuers == ("T",)


def test_closed_ownership_loop_is_singular_and_raises_naming_the_orgs() -> None:
    g = graph_of([pct("A", "B", "100"), pct("B", "A", "100"), pct("P", "C", "10")], {"P"})
    with pytest.raises(OwnershipDataError) as err:
        integrated_matrix(g)
    assert err.value.extra["orgs"] == ["A", "B"]
    with pytest.raises(OwnershipDataError):
        integrated_owners_of(g, "C")


@pytest.mark.parametrize("holding", [H("P", "T", 11, 10), H("P", "T", -1, 10), H("P", "T", 1, 0)])
def test_impossible_share_counts_raise(holding: Holding) -> None:
    with pytest.raises(OwnershipDataError):
        graph_of([holding], {"P"})


def test_a_person_cannot_be_an_issuer_and_pairs_are_unique() -> None:
    with pytest.raises(OwnershipDataError):
        graph_of([pct("A", "P", "10")], {"P"})
    with pytest.raises(OwnershipDataError):
        graph_of([pct("A", "B", "10"), pct("A", "B", "20")], set())


def test_zero_shares_end_a_holding_and_unknown_issuers_are_organisations() -> None:
    g = OwnershipGraph.build([H("P", "T", 0, 100), H("X", "T", 30, 100)], {"P": "person"})
    assert g.direct("P", "T") == 0.0
    assert g.kind_of("T") == "org" and g.kind_of("X") == "unknown"
