"""Property tests: random small ownership graphs against exact Fraction answers."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from supervision.analytics.ownership import (
    Holding,
    OwnershipDataError,
    OwnershipGraph,
    Role,
    beneficial_owners,
    beneficial_owners_all,
    control_groups,
    integrated_matrix,
    integrated_owners_of,
    ultimate_controller,
)

from .exact import exact_integrated

PROPERTY = settings(max_examples=150, deadline=None)


@dataclass
class Case:
    orgs: list[str]
    persons: list[str]
    holdings: list[Holding]
    roles: list[Role]

    def graph(self) -> OwnershipGraph:
        return OwnershipGraph.build(self.holdings, {**dict.fromkeys(self.orgs, "org"),
                                                   **dict.fromkeys(self.persons, "person")})


@st.composite
def cases(draw: st.DrawFn, *, allow_full: bool = False) -> Case:
    """Each org's holders sum to < 100 % (≤ 100 % with allow_full, so closed loops can occur).
    Entries above 1 (an org getting back its own shares through a 99.99 % loop) are compared
    relatively: (I − A) is ill-conditioned there and 1e-9 absolute is below float precision."""
    orgs = [f"O{i}" for i in range(draw(st.integers(1, 5)))]
    persons = [f"P{i}" for i in range(draw(st.integers(0, 3)))]
    holdings: list[Holding] = []
    for org in orgs:
        total = draw(st.sampled_from([7, 100, 997, 10_000]))
        room = total if allow_full else total - 1
        for holder in draw(st.lists(st.sampled_from(orgs + persons), unique=True, max_size=4)):
            if room <= 0:
                break
            shares = draw(st.integers(1, room))
            room -= shares
            holdings.append(Holding(holder, org, shares, total))
    roles = [Role(org, p, "actual_controller", draw(st.booleans()))
             for org in orgs for p in persons if draw(st.integers(0, 9)) == 0]
    return Case(orgs, persons, holdings, roles)


@PROPERTY
@given(cases())
def test_integrated_ownership_equals_the_exact_fraction_solve(case: Case) -> None:
    g = case.graph()
    exact = exact_integrated(g.ids, case.holdings)
    m = integrated_matrix(g).toarray()
    for i, x in enumerate(g.ids):
        for j, y in enumerate(g.ids):
            assert m[i, j] == pytest.approx(float(exact.get((x, y), 0)), rel=1e-9, abs=1e-9)
    for x in g.ids:
        col = integrated_owners_of(g, x)
        for y in g.ids:
            if y != x:
                assert col.get(y, 0.0) == pytest.approx(float(exact.get((y, x), 0)), rel=1e-9, abs=1e-9)


@PROPERTY
@given(cases(allow_full=True))
def test_closed_loops_raise_exactly_when_i_minus_a_is_singular(case: Case) -> None:
    g = case.graph()
    try:
        exact_integrated(g.ids, case.holdings)
        singular = False
    except StopIteration:  # no pivot: I − W is singular
        singular = True
    if singular:
        with pytest.raises(OwnershipDataError):
            integrated_matrix(g)
    else:
        integrated_matrix(g)


@PROPERTY
@given(cases())
def test_whole_graph_controllers_and_owners_agree_with_one_org_answers(case: Case) -> None:
    g = case.graph()
    groups = control_groups(g, case.roles, [])
    every = beneficial_owners_all(g, case.roles)
    for org in case.orgs:
        assert groups.controller_of(org) == ultimate_controller(g, org, case.roles)
        controller = groups.controller_of(org)
        if controller is not None:
            assert groups.group_of(controller) == groups.group_of(org)
        one = beneficial_owners(g, org, case.roles)
        assert [(b.id, b.reasons) for b in every.get(org, [])] == [(b.id, b.reasons) for b in one]
