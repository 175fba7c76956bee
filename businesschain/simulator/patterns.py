"""The patterns regulators hunt, planted into a chain's stream (supervision API §1 "Alert rules").

Transaction patterns return the transactions that make the analytics rule fire:

- `wash_trade` (对倒): two accounts whose holders share an actual controller trade back and forth;
- `trade_ring`: three unrelated accounts pass one security A→B→C→A within 30 minutes, each leg
  within 5 % of the first;
- `circular_holding` (循环持股): three new companies X, Y, Z with X holding Y, Y Z and Z X;
- `threshold_crossing`: three or four accounts of one control group buy 5.2–6 % of a listed
  issuer (each below 5 %) and nobody files a `shareholding_change` disclosure;
- `related_party_trade`: a manager of one group joins the board of a company of another group,
  then the two companies trade.

Block patterns have no transactions; `chain.SimulatedChain.submissions` makes them:

- `forged_signature`: the block is first sent with one registered node's signature replaced by
  garbage (expect 422 `bad_signature`), then as signed;
- `fork`: after the block is accepted, a second, validly signed block for the same height
  (expect 409 `fork`, a consensus failure).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from businesschain.protocol.times import format_time

from .world import INDUSTRIES, Account, Listing, NameBook, TxSpec, World

TRANSACTION_PATTERNS = ("wash_trade", "trade_ring", "circular_holding", "threshold_crossing",
                        "related_party_trade")
BLOCK_PATTERNS = ("forged_signature", "fork")
PATTERNS = TRANSACTION_PATTERNS + BLOCK_PATTERNS
CENT = Decimal("0.01")


@dataclass(frozen=True, slots=True)
class PatternPlan:
    """One planted pattern: its transactions (none for block patterns) and a line for the log."""

    name: str
    transactions: tuple[TxSpec, ...]
    summary: str
    entities: tuple[str, ...] = ()


@dataclass
class PatternContext:
    world: World
    chain: str
    rng: random.Random
    at: datetime
    prices: MutableMapping[str, Decimal]
    book: NameBook

    def name(self, entity_id: str) -> str:
        party = self.world.entities.get(entity_id)
        return party.name if party else entity_id

    def listing(self, exclude_issuers: set[str] | None = None) -> Listing:
        listings = [x for x in self.world.listings_on(self.chain)
                    if not exclude_issuers or x.issuer not in exclude_issuers]
        return self.rng.choice(listings)

    def price(self, security: str) -> Decimal:
        return self.prices[security]

    def trade(self, listing: Listing, seller: Account, buyer: Account, quantity: int, price: Decimal,
              seconds_ago: float) -> TxSpec:
        return ("trade", {
            "security": listing.security, "buyer": buyer.account, "seller": seller.account,
            "quantity": str(quantity), "price": f"{price.quantize(CENT)}",
            "executed_at": format_time(self.at - timedelta(seconds=seconds_ago)),
        })


def _round_lot(quantity: float) -> int:
    return max(100, round(quantity / 100) * 100)


def wash_trade(ctx: PatternContext) -> PatternPlan:
    group = ctx.rng.choice(ctx.world.groups)
    first, second = ctx.rng.sample(ctx.world.group_accounts(group, ctx.chain), 2)
    own = [x for x in ctx.world.listings_on(ctx.chain) if x.issuer in group.companies]
    listing = ctx.rng.choice(own) if own and ctx.rng.random() < 0.7 else ctx.listing()
    quantity = 100 * ctx.rng.randint(500, 5000)
    price = ctx.price(listing.security)
    transactions = (
        ctx.trade(listing, first, second, quantity, price, 95),
        ctx.trade(listing, second, first, quantity, price + CENT, 35),
    )
    summary = (f"wash_trade {listing.security} {listing.name}: {ctx.name(first.holder)} ⇄ "
               f"{ctx.name(second.holder)} ({first.account}/{second.account}), {quantity} shares each way, "
               f"both controlled by {ctx.name(group.controller)}")
    return PatternPlan("wash_trade", transactions, summary, (first.holder, second.holder, group.controller))


def trade_ring(ctx: PatternContext) -> PatternPlan:
    pool = ctx.world.retail_accounts(ctx.chain)
    ring: list[Account] = []
    while len(ring) < 3:
        candidate = ctx.rng.choice(pool)
        if all(candidate.holder != a.holder for a in ring):
            ring.append(candidate)
    a, b, c = ring
    listing = ctx.listing()
    first = 100 * ctx.rng.randint(100, 2000)
    quantities = (first, _round_lot(first * ctx.rng.uniform(0.96, 1.04)),
                  _round_lot(first * ctx.rng.uniform(0.96, 1.04)))
    price = ctx.price(listing.security)
    transactions = (
        ctx.trade(listing, a, b, quantities[0], price, 20 * 60),
        ctx.trade(listing, b, c, quantities[1], price + CENT, 11 * 60),
        ctx.trade(listing, c, a, quantities[2], price, 2 * 60),
    )
    summary = (f"trade_ring {listing.security} {listing.name}: {a.account}→{b.account}→{c.account}→"
               f"{a.account} in 18 min, quantities {'/'.join(map(str, quantities))}")
    return PatternPlan("trade_ring", transactions, summary, (a.holder, b.holder, c.holder))


def circular_holding(ctx: PatternContext) -> PatternPlan:
    brand = ctx.book.brand(unique=False)
    region = ctx.book.region()
    companies = []
    for _ in range(3):
        industry = ctx.rng.choice(INDUSTRIES)[0]
        companies.append(ctx.book.org(f"{region}{brand}{industry}有限公司"))
    as_of = format_time(ctx.at)
    transactions: list[TxSpec] = [("entity_register", c.register_body()) for c in companies]
    links = []
    for holder, issuer in zip(companies, companies[1:] + companies[:1], strict=True):
        total = ctx.rng.randint(10, 200) * 1_000_000
        fraction = ctx.rng.uniform(0.1, 0.35)
        transactions.append(("shareholding", {
            "issuer": issuer.id, "holder": holder.id, "shares": str(int(total * fraction)),
            "total_shares": str(total), "as_of": as_of,
        }))
        links.append(f"{holder.name} {fraction:.0%}→")
    summary = f"circular_holding: {''.join(links)}{companies[0].name}"
    return PatternPlan("circular_holding", tuple(transactions), summary, tuple(c.id for c in companies))


def threshold_crossing(ctx: PatternContext) -> PatternPlan:
    group = ctx.rng.choice(ctx.world.groups)
    accounts = ctx.world.group_accounts(group, ctx.chain)
    buyers = ctx.rng.sample(accounts, min(len(accounts), ctx.rng.randint(3, 4)))
    listing = ctx.listing(exclude_issuers=set(group.companies))
    sellers = ctx.world.fund_accounts(ctx.chain)
    target = listing.total_shares * ctx.rng.uniform(0.052, 0.06)
    weights = [ctx.rng.uniform(0.8, 1.2) for _ in buyers]
    price = ctx.price(listing.security)
    transactions = []
    bought = 0
    for index, (buyer, weight) in enumerate(zip(buyers, weights, strict=True)):
        quantity = _round_lot(target * weight / sum(weights))
        bought += quantity
        transactions.append(ctx.trade(listing, ctx.rng.choice(sellers), buyer, quantity, price,
                                      600 - 120 * index))
    summary = (f"threshold_crossing {listing.security} {listing.name}: group of "
               f"{ctx.name(group.controller)} buys {bought / listing.total_shares:.2%} through "
               f"{len(buyers)} accounts ({', '.join(b.account for b in buyers)}), no disclosure")
    return PatternPlan("threshold_crossing", tuple(transactions), summary,
                       (group.controller, *(b.holder for b in buyers)))


def related_party_trade(ctx: PatternContext) -> PatternPlan:
    first, second = ctx.rng.sample(ctx.world.groups, 2)
    seats = [r for r in ctx.world.roles
             if r.org in (first.holdco, first.investco) and r.person in first.managers]
    seat = ctx.rng.choice(seats)
    other = ctx.rng.choice((second.holdco, second.investco))
    seller = ctx.rng.choice(ctx.world.accounts_of(seat.org, ctx.chain))
    buyer = ctx.rng.choice(ctx.world.accounts_of(other, ctx.chain))
    listing = ctx.listing(exclude_issuers=set(first.companies) | set(second.companies))
    quantity = 100 * ctx.rng.randint(1000, 20000)
    transactions = (
        ("entity_register", ctx.world.entities[seat.person].register_body()),
        ("role", {"org": other, "person": seat.person, "role": "director", "active": True}),
        ctx.trade(listing, seller, buyer, quantity, ctx.price(listing.security), 60),
    )
    summary = (f"related_party_trade {listing.security} {listing.name}: {ctx.name(seat.org)} → "
               f"{ctx.name(other)}, {quantity} shares; {ctx.name(seat.person)} is {seat.role} of the "
               f"first and now director of the second")
    return PatternPlan("related_party_trade", transactions, summary, (seat.org, other, seat.person))


def _block_pattern(name: str, summary: str) -> Callable[[PatternContext], PatternPlan]:
    def plant(ctx: PatternContext) -> PatternPlan:
        return PatternPlan(name, (), summary)
    return plant


PLANTERS: Mapping[str, Callable[[PatternContext], PatternPlan]] = {
    "wash_trade": wash_trade,
    "trade_ring": trade_ring,
    "circular_holding": circular_holding,
    "threshold_crossing": threshold_crossing,
    "related_party_trade": related_party_trade,
    "forged_signature": _block_pattern(
        "forged_signature", "forged_signature: one node's signature replaced by garbage, then resent"),
    "fork": _block_pattern("fork", "fork: a second validly signed block for the height just accepted"),
}


def plant(name: str, ctx: PatternContext) -> PatternPlan:
    try:
        planter = PLANTERS[name]
    except KeyError:
        raise ValueError(f"unknown pattern {name!r}; known: {', '.join(PATTERNS)}") from None
    return planter(ctx)


def parse_patterns(text: str | None) -> tuple[str, ...]:
    """`--patterns wash_trade,fork` → ("wash_trade", "fork"); empty or None → all of them."""
    if not text:
        return PATTERNS
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in PATTERNS]
    if unknown:
        raise ValueError(f"unknown pattern(s) {', '.join(unknown)}; known: {', '.join(PATTERNS)}")
    return names

