"""Trading rules run per accepted block (supervision API §1 alert rules). Pure: plain data in,
`Finding`s out. Quantities are integer share counts and prices `Decimal`; nothing here is a float
except the broker-stake fractions, which come from the ownership graph.

The caller maps accounts to holders (`holder_of`: a mapping or a function; unknown accounts map to
None and are left out of holder-based rules) and holders to control groups (`group_of`, e.g.
`ControlGroups.group_of`), and decides which legs are new in the block.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from operator import itemgetter
from typing import Literal, NamedTuple
from zoneinfo import ZoneInfo

from .findings import SHARE_TOLERANCE, Finding
from .ownership import ControlGroups, OwnershipGraph

RING_WINDOW = timedelta(minutes=30)
RING_TOLERANCE = Decimal("0.10")
RING_MIN_LEGS = 3  # three legs of a simple cycle = three distinct accounts
RING_MAX_LEGS = 6
RING_MAX_EXPANSIONS = 1_000_000
STEPS_PER_WHOLE = 20  # thresholds are the multiples of 5 %
DISCLOSURE_WINDOW = timedelta(days=3)
DISCLOSURE_KIND = "shareholding_change"
FILING_TZ = ZoneInfo("Asia/Shanghai")  # filings are dated to the day, in China time
BROKER_STAKE = 0.05
BROKER_STAKES_ALLOWED = 2  # ≥ 5 % in more than two securities firms is a finding
BROKERS_CONTROLLED_ALLOWED = 1

HolderOf = Mapping[str, str] | Callable[[str], str | None]
GroupOf = Callable[[str], str]
Related = Callable[[str, str], Sequence[str]]


class Leg(NamedTuple):
    """Shares of one security moving `source` → `target` (a trade's seller → buyer, or a transfer).
    Legs, trades and transfers are named tuples: a block makes thousands of them, and a tuple is
    made three times faster than a frozen dataclass."""

    tx_id: str
    chain: str
    height: int
    security: str
    source: str
    target: str
    quantity: int
    at: datetime
    kind: Literal["trade", "transfer"] = "trade"


_LEG_ORDER = itemgetter(7, 1, 2, 0)  # (at, chain, height, tx_id): time order, ties broken stably
_LEG_TIME = itemgetter(7)  # at


class Trade(NamedTuple):
    tx_id: str
    chain: str
    height: int
    security: str
    buyer_account: str
    seller_account: str
    quantity: int
    price: Decimal
    executed_at: datetime

    def leg(self) -> Leg:
        return Leg(self.tx_id, self.chain, self.height, self.security, self.seller_account,
                   self.buyer_account, self.quantity, self.executed_at, "trade")


class Transfer(NamedTuple):
    tx_id: str
    chain: str
    height: int
    security: str
    from_account: str
    to_account: str
    quantity: int
    executed_at: datetime  # the block timestamp: a transfer carries no time of its own

    def leg(self) -> Leg:
        return Leg(self.tx_id, self.chain, self.height, self.security, self.from_account,
                   self.to_account, self.quantity, self.executed_at, "transfer")


@dataclass(frozen=True, slots=True)
class Disclosure:
    tx_id: str
    issuer: str
    holder: str
    kind: str
    as_of: datetime
    filed_at: datetime | None = None  # the block timestamp, when known


@dataclass(frozen=True, slots=True)
class Crossing:
    """A control group's summed holding of an issuer passing `step` × 5 % of its total shares."""

    group: str
    issuer: str
    step: int
    direction: Literal["up", "down"]
    before: int
    after: int
    total_shares: int
    at: datetime
    chain: str | None = None
    height: int | None = None
    tx_ids: tuple[str, ...] = ()

    @property
    def percent(self) -> int:
        return self.step * 100 // STEPS_PER_WHOLE

    @property
    def fingerprint(self) -> str:
        where = f"{self.chain}:{self.height}" if self.chain is not None else self.at.isoformat()
        return f"threshold_crossing:{self.group}:{self.issuer}:{self.percent}%:{self.direction}:{where}"


class RingSearchBudgetExceeded(RuntimeError):
    """The ring search stopped after its expansion budget; `findings` holds the rings found so far."""

    def __init__(self, findings: list[Finding]) -> None:
        super().__init__(f"trade ring search budget exhausted after {len(findings)} rings")
        self.findings = findings


def _lookup(holder_of: HolderOf) -> Callable[[str], str | None]:
    return holder_of.get if isinstance(holder_of, Mapping) else holder_of


# ---------------------------------------------------------------------------------------------
# Trades between one control group, or between related parties
# ---------------------------------------------------------------------------------------------


def _trade_facts(t: Trade, buyer: str | None, seller: str | None) -> dict[str, object]:
    return {"security": t.security, "quantity": t.quantity, "price": str(t.price),
            "amount": str(t.price * t.quantity), "buyer_account": t.buyer_account,
            "seller_account": t.seller_account, "buyer": buyer, "seller": seller,
            "executed_at": t.executed_at.isoformat()}


def wash_trades(trades: Iterable[Trade], holder_of: HolderOf, group_of: GroupOf) -> list[Finding]:
    """对倒: buyer and seller accounts in one control group (one holder, or one account, counts)."""
    holder = _lookup(holder_of)
    found: list[Finding] = []
    for t in trades:
        buyer, seller = holder(t.buyer_account), holder(t.seller_account)
        if t.buyer_account == t.seller_account:
            group = group_of(buyer) if buyer is not None else None
        elif buyer is None or seller is None:
            continue
        elif buyer == seller or group_of(buyer) == group_of(seller):
            group = group_of(buyer)
        else:
            continue
        entities = tuple(sorted({e for e in (buyer, seller) if e is not None}))
        found.append(Finding("wash_trade", f"wash_trade:{t.tx_id}", t.chain, t.height, (t.tx_id,),
                             entities, {**_trade_facts(t, buyer, seller), "group": group}))
    return found


def related_party_trades(trades: Iterable[Trade], holder_of: HolderOf, group_of: GroupOf,
                         related: Related) -> list[Finding]:
    """Buyer and seller holders are related parties (`related` gives the reasons) but not one group."""
    holder = _lookup(holder_of)
    found: list[Finding] = []
    for t in trades:
        buyer, seller = holder(t.buyer_account), holder(t.seller_account)
        if buyer is None or seller is None or buyer == seller or group_of(buyer) == group_of(seller):
            continue
        reasons = list(related(buyer, seller))
        if reasons:
            found.append(Finding("related_party_trade", f"related_party_trade:{t.tx_id}", t.chain, t.height,
                                 (t.tx_id,), tuple(sorted((buyer, seller))),
                                 {**_trade_facts(t, buyer, seller), "reasons": reasons}))
    return found


# ---------------------------------------------------------------------------------------------
# Trade rings
# ---------------------------------------------------------------------------------------------


def trade_rings(legs: Sequence[Leg], new_tx_ids: Collection[str] | None = None, *,
                window: timedelta = RING_WINDOW, tolerance: Decimal | float | str = RING_TOLERANCE,
                max_legs: int = RING_MAX_LEGS, holder_of: HolderOf | None = None,
                max_expansions: int = RING_MAX_EXPANSIONS) -> list[Finding]:
    """Rings: legs of one security A → B → … → A through ≥ 3 distinct accounts, each leg starting
    where the previous one ended and not earlier than it, the last within `window` of the first,
    every quantity within `tolerance` of the first leg's (|q − q₀| ≤ tolerance × q₀, exactly).
    Account numbers are unique only within a chain, so a leg continues only legs of its own chain:
    legs are keyed by (chain, security, account).

    `legs` are the recent legs (within `window` before the block) plus the block's; only rings
    with at least one leg in `new_tx_ids` are reported (None: every leg counts as new); `holder_of`
    names the holders of a ring's accounts (those of its chain). The search
    is a depth-first walk bounded by `max_legs`, the window and the quantity band; if it still
    exceeds `max_expansions` steps it raises `RingSearchBudgetExceeded` with the rings found."""
    tol = Fraction(Decimal(str(tolerance)))
    ordered = sorted(legs, key=_LEG_ORDER)
    fresh_ids = None if new_tx_ids is None else set(new_tx_ids)

    def is_new(leg: Leg) -> bool:
        return fresh_ids is None or leg.tx_id in fresh_ids

    new_times = [leg.at for leg in ordered if fresh_ids is None or leg.tx_id in fresh_ids]
    if not new_times:
        return []
    out_of: dict[tuple[str, str, str], list[Leg]] = defaultdict(list)
    for leg in ordered:
        out_of[(leg.chain, leg.security, leg.source)].append(leg)
    found: dict[frozenset[str], Finding] = {}
    budget = [max_expansions]
    holder = _lookup(holder_of) if holder_of is not None else None

    def record(path: list[Leg]) -> None:
        key = frozenset(leg.tx_id for leg in path)
        fresh = [leg for leg in path if is_new(leg)]
        if key in found or not fresh:
            return
        last = max(fresh, key=lambda leg: (leg.at, leg.height))
        accounts = [leg.source for leg in path]
        holders = sorted({h for a in accounts if (h := holder(a)) is not None}) if holder else []
        tx_ids = tuple(leg.tx_id for leg in path)
        found[key] = Finding(
            "trade_ring", f"trade_ring:{path[0].security}:{','.join(sorted(tx_ids))}", last.chain,
            last.height, tx_ids, tuple(holders),
            {"security": path[0].security, "accounts": accounts, "quantities": [leg.quantity for leg in path],
             "legs": len(path), "started_at": path[0].at.isoformat(), "closed_at": path[-1].at.isoformat(),
             "seconds": (path[-1].at - path[0].at).total_seconds()})

    def extend(path: list[Leg], visited: set[str], lo: int, hi: int, deadline: datetime) -> None:
        last, origin = path[-1], path[0].source
        key = (last.chain, last.security, last.target)
        candidates = out_of.get(key, ())
        for leg in candidates[bisect.bisect_left(candidates, last.at, key=_LEG_TIME):]:
            if leg.at > deadline:
                break
            budget[0] -= 1
            if budget[0] < 0:
                raise RingSearchBudgetExceeded(list(found.values()))
            if not lo <= leg.quantity <= hi:
                continue
            if leg.target == origin:
                if len(path) + 1 >= RING_MIN_LEGS:
                    record([*path, leg])
                continue
            if leg.target in visited or len(path) + 1 >= max_legs:
                continue
            visited.add(leg.target)
            path.append(leg)
            extend(path, visited, lo, hi, deadline)
            path.pop()
            visited.discard(leg.target)

    try:
        for start in ordered:
            if start.source == start.target or start.quantity <= 0:
                continue
            # Most legs lead nowhere: nothing leaves their target in that security after them.
            onward = out_of.get((start.chain, start.security, start.target))
            if onward is None or onward[-1].at < start.at:
                continue
            deadline = start.at + window
            # Some new leg must fall inside [start.at, deadline], or no ring from here can include one.
            k = bisect.bisect_left(new_times, start.at)
            if k == len(new_times) or new_times[k] > deadline:
                continue
            slack = start.quantity * tol.numerator // tol.denominator  # ⌊tolerance × q⌋, exactly
            extend([start], {start.source, start.target}, start.quantity - slack, start.quantity + slack,
                   deadline)
    finally:
        # `extend` refers to itself through its closure: drop that reference cycle, so that the
        # legs it indexes are freed now rather than by the cyclic garbage collector.
        extend = None  # type: ignore[assignment]
    return list(found.values())


# ---------------------------------------------------------------------------------------------
# Threshold crossings (5 % steps) and their disclosure
# ---------------------------------------------------------------------------------------------


def threshold_step(quantity: int, total_shares: int) -> int:
    """How many whole 5 % steps `quantity` reaches (exact integer arithmetic: 5 % exactly is step 1)."""
    return max(quantity, 0) * STEPS_PER_WHOLE // total_shares


def threshold_step_change(before: int, after: int, total_shares: int) -> tuple[int, int] | None:
    """(step before, step after) when a holding moved across at least one multiple of 5 %, else None."""
    if total_shares <= 0:
        return None
    a, b = threshold_step(before, total_shares), threshold_step(after, total_shares)
    return None if a == b else (a, b)


def threshold_crossings(before: Mapping[tuple[str, str], int], after: Mapping[tuple[str, str], int],
                        total_shares: Mapping[str, int], *, at: datetime, chain: str | None = None,
                        height: int | None = None, tx_ids: Sequence[str] = ()) -> list[Crossing]:
    """Every 5 % step crossed by a (group, issuer) holding between `before` and `after` (missing = 0),
    one `Crossing` per step, up or down. Issuers without a known total are skipped."""
    found: list[Crossing] = []
    for group, issuer in sorted(set(before) | set(after)):
        total = total_shares.get(issuer, 0)
        b, a = before.get((group, issuer), 0), after.get((group, issuer), 0)
        change = threshold_step_change(b, a, total)
        if change is None:
            continue
        lo, hi = sorted(change)
        direction: Literal["up", "down"] = "up" if change[1] > change[0] else "down"
        found += [Crossing(group, issuer, step, direction, b, a, total, at, chain, height, tuple(tx_ids))
                  for step in range(lo + 1, hi + 1)]
    return found


def disclosure_due(crossing_at: datetime) -> datetime:
    """The last moment a `shareholding_change` disclosure counts: 3 days (72 h) after the crossing."""
    return crossing_at + DISCLOSURE_WINDOW


def is_disclosed(crossing: Crossing, disclosures: Iterable[Disclosure],
                 group_members: Collection[str]) -> bool:
    """A `shareholding_change` disclosure of the issuer by a group member, dated from the start of the
    crossing's day (China time: filings carry dates, often midnight) up to `disclosure_due`. The date
    is when it was filed (block timestamp) if known, else its `as_of`."""
    start = crossing.at.astimezone(FILING_TZ).replace(hour=0, minute=0, second=0, microsecond=0)
    due = disclosure_due(crossing.at)
    return any(d.kind == DISCLOSURE_KIND and d.issuer == crossing.issuer and d.holder in group_members
               and start <= (d.filed_at or d.as_of) <= due for d in disclosures)


def crossing_finding(crossing: Crossing, group_members: Collection[str] = ()) -> Finding:
    """The alert for a crossing left undisclosed past its due time."""
    return Finding(
        "threshold_crossing", crossing.fingerprint, crossing.chain, crossing.height, crossing.tx_ids,
        tuple(dict.fromkeys([crossing.group, crossing.issuer, *sorted(group_members)])),
        {"group": crossing.group, "issuer": crossing.issuer, "percent": crossing.percent,
         "direction": crossing.direction, "before": crossing.before, "after": crossing.after,
         "total_shares": crossing.total_shares, "crossed_at": crossing.at.isoformat(),
         "due_at": disclosure_due(crossing.at).isoformat()})


# ---------------------------------------------------------------------------------------------
# Stakes in securities firms
# ---------------------------------------------------------------------------------------------


def broker_stakes(graph: OwnershipGraph, groups: ControlGroups, brokers: Iterable[str]
                  ) -> tuple[dict[str, dict[str, float]], dict[str, set[str]]]:
    """Inputs for `broker_stake_findings` from the ownership graph: a group's stake in a firm is the
    sum of its members' direct stakes (controlled subsidiaries are members, so indirect holdings
    through them count once; minority chains do not), and a firm is controlled by the group of its
    ultimate controller."""
    stakes: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    controlled: dict[str, set[str]] = defaultdict(set)
    for broker in sorted(set(brokers)):
        j = graph.index.get(broker)
        if j is None:
            continue
        col = graph.WT[j]
        for i, fraction in zip(col.indices.tolist(), col.data.tolist(), strict=True):
            holder = graph.ids[i]
            if holder != broker:
                stakes[groups.group_of(holder)][broker] += fraction
        controller = groups.controller_of(broker)
        if controller is not None:
            controlled[groups.group_of(controller)].add(broker)
    return {g: dict(s) for g, s in stakes.items()}, dict(controlled)


def broker_stake_findings(group_holdings_fraction: Mapping[str, Mapping[str, float]],
                          controlled_brokers: Mapping[str, Collection[str]], *,
                          chain: str | None = None, height: int | None = None) -> list[Finding]:
    """《证券公司股权管理规定》: one control group holding ≥ 5 % in more than two securities firms, or
    controlling more than one. One finding per group (fingerprint `broker_stake_limit:<group>`), so
    a group that adds a fourth firm refreshes its alert rather than opening another."""
    found: list[Finding] = []
    for group in sorted(set(group_holdings_fraction) | set(controlled_brokers)):
        stakes = {b: f for b, f in group_holdings_fraction.get(group, {}).items()
                  if f >= BROKER_STAKE - SHARE_TOLERANCE}
        controls = sorted(controlled_brokers.get(group, ()))
        if len(stakes) <= BROKER_STAKES_ALLOWED and len(controls) <= BROKERS_CONTROLLED_ALLOWED:
            continue
        firms = sorted(set(stakes) | set(controls))
        found.append(Finding(
            "broker_stake_limit", f"broker_stake_limit:{group}", chain, height, (), (group, *firms),
            {"group": group, "stakes": {b: round(float(f), 6) for b, f in sorted(stakes.items())},
             "firms_at_5_percent": len(stakes), "controlled": controls}))
    return found
