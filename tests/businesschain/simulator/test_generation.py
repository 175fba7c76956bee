"""The simulator's pure generation: a seed fixes the world and the blocks, every block is valid ECP/1,
and the planted patterns have the shape the alert rules look for."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from businesschain.protocol.identifiers import is_account, is_prc_id, is_security, is_uscc
from businesschain.protocol.schemas import parse_block
from businesschain.protocol.times import parse_time
from businesschain.simulator.chain import SimulatedChain, generate_node_keys, keys_from_json, keys_to_json
from businesschain.simulator.patterns import PATTERNS, PatternContext, parse_patterns, plant
from businesschain.simulator.stream import ChainStream
from businesschain.simulator.world import ALL_CHAINS, SAC, SSE, SZSE, NameBook, World, build_world
from businesschain.verify import BlockRejected, ChainState, body_texts, verify_block

START = datetime(2026, 3, 2, 1, 30, tzinfo=UTC)
SEED = 7


@pytest.fixture(scope="module")
def world() -> World:
    return build_world(SEED, groups=12, retail=150)


@pytest.fixture(scope="module")
def keys() -> dict:
    return {chain: generate_node_keys(chain) for chain in ALL_CHAINS}


def run_chain(world: World, keys: dict, chain_id: str, patterns=PATTERNS, *, verify: bool = True) -> list:
    """Setup and one block per pattern, as the simulator sends them (every block assumed accepted).
    Returns (submission, verification code or None) pairs."""
    stream = ChainStream(world, chain_id, seed=SEED, block_size=40)
    chain = SimulatedChain(chain_id, keys[chain_id], rng=random.Random(1))
    nodes = {node: key.public_key() for node, key in chain.keys.items()}
    results = []
    at = START

    def check(block: dict) -> str | None:
        parsed = parse_block(block)
        if not verify:
            return None
        state = ChainState(chain.height, chain.head_hash, chain.head_timestamp, nodes, 3)
        try:
            verify_block(parsed, state, now=at + timedelta(seconds=1), max_skew=timedelta(seconds=300),
                         bodies=body_texts(parsed))
        except BlockRejected as error:
            return error.code
        return None

    for specs in stream.setup_blocks(at):
        block = chain.build_block(specs, at)
        results.append(("setup", block, check(block)))
        chain.accept(block)
    for name in patterns:
        at += timedelta(seconds=2)
        plan = stream.plan_block(chain.next_height, at, patterns=[name])
        block = chain.build_block(plan.transactions, at)
        for submission in chain.submissions(block, plan.block_patterns):
            if submission.label == "fork":  # refused at the height check, before verification
                assert submission.block["header"]["height"] == chain.height
                parse_block(submission.block)
                results.append((submission, plan, None))
                continue
            results.append((submission, plan, check(submission.block)))
            if submission.commit:
                chain.accept(block)
    return results


def test_world_identifiers_are_valid_and_names_chinese(world: World) -> None:
    for party in world.entities.values():
        assert (is_uscc if party.kind == "org" else is_prc_id)(party.id), party
        assert all("\u4e00" <= ch <= "\u9fff" for ch in party.name), party.name
    for account in world.accounts:
        assert is_account(account.account)
    assert {x.security[:3] for x in world.listings_on(SSE)} <= {"600", "601", "602", "603", "605", "688"}
    assert {x.security[:3] for x in world.listings_on(SZSE)} <= {"000", "001", "002", "300", "301"}
    assert all(is_security(x.security) for x in world.listings)
    assert any(name.endswith("证券股份有限公司") for name in (world.entities[b].name for b in world.brokers))


def test_world_is_deterministic_for_a_seed(world: World) -> None:
    again = build_world(SEED, groups=12, retail=150)
    assert again.entities == world.entities
    assert again.accounts == world.accounts
    assert again.holdings == world.holdings
    assert build_world(SEED + 1, groups=12, retail=150).entities != world.entities


def test_registries_are_several_layers_deep_with_a_controller_on_top(world: World) -> None:
    parents = {(h.issuer, h.holder): h.shares / h.total_shares for h in world.holdings}
    for group in world.groups:
        ladder = [group.controller, *group.companies]
        assert len(ladder) >= 5  # person → H1 → (H1b) → H2 → L → S
        for upper, lower in itertools.pairwise(ladder):
            assert parents[(lower, upper)] > 0.29, (upper, lower)
        actual = {r.org for r in world.roles
                  if r.person == group.controller and r.role == "actual_controller"}
        assert actual == set(group.companies)
    # Some cross holdings between groups, all below 5 %.
    crosses = [h for h in world.holdings
               if world.group_of(h.holder) and world.group_of(h.issuer)
               and world.group_of(h.holder) is not world.group_of(h.issuer)]
    assert crosses and all(h.shares / h.total_shares < 0.05 for h in crosses)


def test_an_entity_used_on_two_chains_is_registered_on_both(world: World) -> None:
    registered = {
        chain: {body["id"] for kind, body in world.setup_transactions(chain, "2026-03-02T00:00:00.000Z")
                if kind == "entity_register"}
        for chain in ALL_CHAINS
    }
    for chain in ALL_CHAINS:
        for kind, body in world.setup_transactions(chain, "2026-03-02T00:00:00.000Z"):
            for key in ("holder", "issuer", "broker", "org", "person"):
                if key in body:
                    assert body[key] in registered[chain], (chain, kind, key)
    group = world.groups[0]
    assert all(group.controller in registered[chain] for chain in ALL_CHAINS)


@pytest.mark.parametrize("chain_id", ALL_CHAINS)
def test_every_generated_block_parses_and_verifies(world: World, keys: dict, chain_id: str) -> None:
    results = run_chain(world, keys, chain_id)
    codes = {}
    for submission, _plan, code in results:
        label = "setup" if submission == "setup" else submission.label
        codes.setdefault(label, set()).add(code)
    assert codes["setup"] == {None}
    assert codes["block"] == {None}
    assert codes["forged_signature"] == {"bad_signature"}
    assert "fork" in codes


def test_blocks_are_deterministic_for_a_seed_and_clock(world: World, keys: dict) -> None:
    first = run_chain(world, keys, SZSE, verify=False)
    second = run_chain(build_world(SEED, groups=12, retail=150), keys, SZSE, verify=False)

    def hashes(results: list) -> list[str]:
        return [(r[0] if isinstance(r[0], str) else r[0].label,
                 (r[1] if isinstance(r[0], str) else r[0].block)["block_hash"]) for r in results]

    assert hashes(first) == hashes(second)
    other = ChainStream(world, SZSE, seed=SEED + 1, block_size=40)
    same = ChainStream(world, SZSE, seed=SEED, block_size=40)
    assert other.plan_block(9, START).transactions != same.plan_block(9, START).transactions


def test_fork_is_a_validly_signed_block_for_the_accepted_height(keys: dict) -> None:
    chain = SimulatedChain(SSE, keys[SSE], rng=random.Random(2))
    block = chain.build_block([("evidence", {"business_type": "x", "reference": "r", "doc_sm3": "a" * 64})],
                              START)
    assert chain.competing_block() is None
    chain.accept(block)
    fork = chain.competing_block()
    assert fork["header"]["height"] == block["header"]["height"] == 0
    assert fork["header"]["prev_hash"] == block["header"]["prev_hash"]
    assert fork["block_hash"] != block["block_hash"]
    parsed = parse_block(fork)
    state = ChainState(-1, "0" * 64, None, {n: k.public_key() for n, k in chain.keys.items()}, 3)
    verdict = verify_block(parsed, state, now=START, max_skew=timedelta(seconds=300),
                           bodies=body_texts(parsed))
    assert len(verdict.signers) == 4


def test_node_keys_round_trip_through_json(keys: dict) -> None:
    restored = keys_from_json(keys_to_json(keys[SAC]))
    assert {n: k.public_key().to_hex() for n, k in restored.items()} == {
        n: k.public_key().to_hex() for n, k in keys[SAC].items()}


def context(world: World, chain: str = SSE, seed: int = 3) -> PatternContext:
    rng = random.Random(seed)
    prices = {x.security: x.price for x in world.listings_on(chain)}
    return PatternContext(world, chain, rng, START, prices, NameBook(rng))


def trades(plan) -> list[dict]:
    return [body for kind, body in plan.transactions if kind == "trade"]


def holder(world: World, chain: str, account: str) -> str:
    return next(a.holder for a in world.accounts if a.chain == chain and a.account == account)


@pytest.mark.parametrize("seed", range(5))
def test_wash_trade_accounts_share_a_controller(world: World, seed: int) -> None:
    plan = plant("wash_trade", context(world, seed=seed))
    for body in trades(plan):
        buyer, seller = holder(world, SSE, body["buyer"]), holder(world, SSE, body["seller"])
        assert buyer != seller
        assert world.group_of(buyer) is world.group_of(seller) is not None


@pytest.mark.parametrize("seed", range(5))
def test_trade_ring_passes_three_accounts_back_to_the_first_within_30_minutes(world: World, seed: int,
                                                                             ) -> None:
    plan = plant("trade_ring", context(world, SZSE, seed))
    legs = trades(plan)
    assert len(legs) == 3
    assert [leg["seller"] for leg in legs] == [legs[0]["seller"], legs[0]["buyer"], legs[1]["buyer"]]
    assert legs[2]["buyer"] == legs[0]["seller"]
    assert len({leg["security"] for leg in legs}) == 1
    first = int(legs[0]["quantity"])
    assert all(abs(int(leg["quantity"]) - first) <= first * 0.1 for leg in legs)
    times = [parse_time(leg["executed_at"]) for leg in legs]
    assert times == sorted(times) and times[-1] - times[0] <= timedelta(minutes=30)
    holders = {holder(world, SZSE, leg["seller"]) for leg in legs}
    assert len(holders) == 3 and not any(world.group_of(h) for h in holders)


def test_circular_holding_is_a_cycle_of_three_organisations(world: World) -> None:
    plan = plant("circular_holding", context(world, SAC))
    edges = {(body["holder"], body["issuer"]) for kind, body in plan.transactions if kind == "shareholding"}
    registered = {body["id"] for kind, body in plan.transactions if kind == "entity_register"}
    assert len(edges) == 3 and {h for h, _ in edges} == {i for _, i in edges} == registered
    start = next(iter(edges))[0]
    step, seen = start, []
    for _ in range(3):
        step = next(i for h, i in edges if h == step)
        seen.append(step)
    assert step == start and len(set(seen)) == 3


@pytest.mark.parametrize("seed", range(5))
def test_threshold_crossing_spreads_over_5_percent_through_several_group_accounts(
        world: World, seed: int) -> None:
    plan = plant("threshold_crossing", context(world, SSE, seed))
    legs = trades(plan)
    listing = next(x for x in world.listings if x.security == legs[0]["security"])
    buyers = {holder(world, SSE, leg["buyer"]) for leg in legs}
    groups = {id(world.group_of(b)) for b in buyers}
    assert len(groups) == 1 and len(legs) >= 3
    bought = sum(int(leg["quantity"]) for leg in legs)
    assert 0.05 < bought / listing.total_shares < 0.065
    assert all(int(leg["quantity"]) / listing.total_shares < 0.05 for leg in legs)
    assert not any(kind == "disclosure" for kind, _ in plan.transactions)


@pytest.mark.parametrize("seed", range(5))
def test_related_party_trade_shares_a_person_across_two_groups(world: World, seed: int) -> None:
    plan = plant("related_party_trade", context(world, SZSE, seed))
    (leg,) = trades(plan)
    (role,) = [body for kind, body in plan.transactions if kind == "role"]
    buyer, seller = holder(world, SZSE, leg["buyer"]), holder(world, SZSE, leg["seller"])
    assert world.group_of(buyer) is not world.group_of(seller)
    assert role["org"] == buyer and role["active"]
    assert any(r.org == seller and r.person == role["person"] for r in world.roles)


def test_prices_are_decimal_strings_and_times_ecp1(world: World) -> None:
    stream = ChainStream(world, SSE, seed=SEED, block_size=200)
    plan = stream.plan_block(5, START, patterns=["wash_trade"])
    for kind, body in plan.transactions:
        if kind == "trade":
            assert Decimal(body["price"]) > 0 and "." in body["price"]
            assert parse_time(body["executed_at"]) <= START
    assert len(plan.transactions) == 200


def test_parse_patterns_rejects_unknown_names() -> None:
    assert parse_patterns("") == PATTERNS
    assert parse_patterns("fork, wash_trade") == ("fork", "wash_trade")
    with pytest.raises(ValueError, match="unknown pattern"):
        parse_patterns("fork,spoofing")
