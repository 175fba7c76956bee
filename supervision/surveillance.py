"""Per-block analytics (supervision API §1 alert rules) and their full recompute: services that
load what one accepted block touched, run the pure rules (`supervision.analytics`) and raise alerts
through `supervision.services.alerts_raise` (one bulk raise per block).

`block_analyse` runs in the background task queued for every accepted block, never in the
ingestion request, with a bounded number of queries whatever the block's size:

- structure rules, only when the block carries shareholding / role / concert-party / account /
  registration / listing transactions: the ownership structure is brought up to date, the control
  groups re-materialised (`ControlGroupMember`) when they may have changed, and circular holdings
  and broker stakes involving what the block touched are raised;
- trade rules on the block's trades and transfers, with the accounts' holders, the listings and
  the control groups of the process's ownership structure (the materialised table when it has not
  computed its groups): wash trades, related-party trades, trade rings over the legs of the same
  securities in the 30 minutes before;
- threshold crossings: a control group's position in a listed issuer (all its accounts on all
  chains, all the issuer's securities) crossing a multiple of 5 % opens a `ThresholdCrossing`; a
  `shareholding_change` disclosure by a group member filed within 3 days resolves it, otherwise it
  becomes an alert once due. Due crossings are settled on every analysed block against the chains'
  clock (the latest accepted block timestamp), so replayed history is judged by its own time, and
  by `analytics_recompute` against the wall clock.

On PostgreSQL with the connection pool, the long reads run on second connections while the
analysis goes on (`_meanwhile`): the ring search as soon as the block is loaded, and the positions
(and the related-party roles) for a plan made from the structure the process has cached, kept only
if the block's own structure refresh leaves holders, listings and groups as they were
(`_EarlyReads`).
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any, TypeVar

from django.db import connection, transaction
from django.db.models import DateTimeField, F, Func, Max, OuterRef, Q, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone
from psycopg.types.datetime import TimestamptzLoader

from businesschain.errors import NotFound
from businesschain.models import (
    Block,
    Chain,
    Disclosure,
    Entity,
    Holding,
    Position,
    Role,
    Trade,
    Transaction,
    Transfer,
)
from supervision import penetration
from supervision.analytics import ownership as own
from supervision.analytics import trading
from supervision.analytics.findings import Finding
from supervision.models import Alert, AnalyticsState, ControlGroupMember, ThresholdCrossing
from supervision.services import alert_occurrence, alerts_raise, severity_for

log = logging.getLogger(__name__)

DISCLOSURE_KIND = trading.DISCLOSURE_KIND
RING_ROUNDS = trading.RING_MAX_LEGS - 1  # a ring's other legs are at most this many hops away
SETTLE_BATCH = 500

Progress = Callable[[int, int], None]
_T = TypeVar("_T")


# --- results ----------------------------------------------------------------------------------


@dataclass(slots=True)
class BlockAnalysis:
    """What analysing one block did (the task's JSON result)."""

    chain_id: str
    height: int
    structure_rebuilt: bool = False
    findings: dict[str, int] = field(default_factory=dict)
    alerts_created: int = 0
    alerts_repeated: int = 0
    crossings_opened: int = 0
    crossings_disclosed: int = 0
    crossings_alerted: int = 0
    timings: dict[str, float] = field(default_factory=dict)  # milliseconds per stage

    def as_json(self) -> dict[str, Any]:
        return {
            "chain": self.chain_id, "height": self.height, "structure_rebuilt": self.structure_rebuilt,
            "findings": dict(sorted(self.findings.items())), "alerts_created": self.alerts_created,
            "alerts_repeated": self.alerts_repeated, "crossings_opened": self.crossings_opened,
            "crossings_disclosed": self.crossings_disclosed, "crossings_alerted": self.crossings_alerted,
            "timings_ms": self.timings,
        }


@dataclass(slots=True)
class RecomputeReport:
    blocks: int = 0
    entities_in_groups: int = 0
    findings: dict[str, int] = field(default_factory=dict)
    alerts_created: int = 0
    crossings: int = 0
    crossings_alerted: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        found = ", ".join(f"{code} {n}" for code, n in sorted(self.findings.items())) or "none"
        return (f"recomputed {self.blocks} blocks in {self.seconds:.1f} s: {self.entities_in_groups} "
                f"entities in control groups; findings: {found}; {self.alerts_created} new alerts; "
                f"{self.crossings} threshold crossings ({self.crossings_alerted} undisclosed)")


def _count(counts: dict[str, int], findings: Iterable[Finding]) -> None:
    for f in findings:
        counts[f.code] = counts.get(f.code, 0) + 1


# --- what one block brings ---------------------------------------------------------------------


@dataclass(slots=True)
class _BlockData:
    chain_id: str
    height: int
    timestamp: datetime
    structure_txs: list[tuple[str, str, dict[str, Any]]]  # (tx_id, type, body)
    trades: list[trading.Trade]
    transfers: list[trading.Transfer]
    disclosures: list[trading.Disclosure]
    structure: penetration.OwnershipStructure | None = None  # current, with the accounts' holders
    _holders: dict[str, str] | None = None
    _groups: own.ControlGroups | None = None
    _legs: list[trading.Leg] | None = None
    _holder_groups: dict[str, str] | None = None
    _account_groups: dict[str, str] | None = None
    _candidates: set[str] | None = None

    @property
    def legs(self) -> list[trading.Leg]:
        """Built once: the rules read it thousands of times per block."""
        if self._legs is None:
            self._legs = [t.leg() for t in self.trades] + [t.leg() for t in self.transfers]
        return self._legs

    def holders(self) -> dict[str, str]:
        """Holder of every account the block's legs name (accounts of the block's chain), from the
        ownership structure's inputs, which hold every account (`StructureInputs.holders`)."""
        if self._holders is None:
            assert self.structure is not None, "set the block's structure first"
            known = self.structure.inputs.holders_on(self.chain_id)
            accounts = {a for leg in self.legs for a in (leg.source, leg.target)}
            self._holders = {a: h for a in accounts if (h := known.get(a)) is not None}
        return self._holders

    def forget_structure(self) -> None:
        """Drop what was derived from an earlier structure (holders, groups)."""
        self._holders = self._holder_groups = self._account_groups = self._groups = self._candidates = None

    def holder_groups(self) -> dict[str, str]:
        """The control group of every holder in `holders` (a dict: the rules look groups up
        thousands of times per block)."""
        if self._holder_groups is None:
            group_of = self.groups().group_by_entity
            self._holder_groups = {h: group_of.get(h, h) for h in set(self.holders().values())}
        return self._holder_groups

    def account_groups(self) -> dict[str, str]:
        """The control group of every account in `holders` (its holder's)."""
        if self._account_groups is None:
            group_of = self.holder_groups()
            self._account_groups = {a: group_of[h] for a, h in self.holders().items()}
        return self._account_groups

    def groups(self) -> own.ControlGroups:
        """The control groups of the block's structure when it has them computed (the same inputs
        give the same groups as the materialised table), else those of the holders read from the
        materialised table: a worker that has not computed them does not solve the matrix here."""
        if self._groups is None:
            known = self.structure.computed_groups if self.structure is not None else None
            self._groups = known if known is not None else penetration.stored_groups(self.holders().values())
        return self._groups

    def related_candidates(self) -> set[str]:
        """The holders on the two sides of a trade of the block in different control groups: the
        only ones a related-party trade can involve."""
        if self._candidates is None:
            holder_of = self.holders()
            self._candidates = set()
            if self.trades and holder_of:
                group_of = self.account_groups()
                for t in self.trades:
                    buyer, seller = holder_of.get(t.buyer_account), holder_of.get(t.seller_account)
                    if buyer and seller and buyer != seller \
                            and group_of[t.buyer_account] != group_of[t.seller_account]:
                        self._candidates.update((buyer, seller))
        return self._candidates

    def touched_entities(self) -> set[str]:
        out: set[str] = set()
        for _, kind, body in self.structure_txs:
            for key in ("issuer", "holder", "org", "person", "id", "broker"):
                value = body.get(key)
                if isinstance(value, str):
                    out.add(value)
            if kind == "concert_party":
                out.update(p for p in body.get("parties", ()) if isinstance(p, str))
        return out


def _block_data(chain_id: str, height: int) -> _BlockData:
    """What the analysis needs of one stored block: on PostgreSQL in two raw queries (the block
    row, its structure transactions and its disclosures; its trades and transfers), elsewhere
    through the ORM."""
    if connection.vendor == "postgresql":
        timestamp, structure, disclosures = _block_rows_pg(chain_id, height)
    else:
        timestamp, structure, disclosures = _block_rows_orm(chain_id, height)
    trades, transfers, legs = _block_trades_and_transfers(chain_id, height)
    return _BlockData(chain_id, height, timestamp, structure, trades, transfers,
                      [trading.Disclosure(tx_id, issuer, holder, DISCLOSURE_KIND, as_of, timestamp)
                       for tx_id, issuer, holder, as_of in disclosures], _legs=legs)


StructureTx = tuple[str, str, dict[str, Any]]  # (tx_id, type, body)
DisclosureRow = tuple[str, str, str, datetime]  # (tx_id, issuer, holder, as_of)


def _block_rows_pg(chain_id: str, height: int) -> tuple[datetime, list[StructureTx], list[DisclosureRow]]:
    qn = connection.ops.quote_name
    rows = _fetchall(
        f"WITH b AS (SELECT id, timestamp FROM {qn(Block._meta.db_table)} "  # noqa: S608
        "WHERE chain_id = %s AND height = %s) "
        "SELECT 0, NULL, NULL, NULL, b.timestamp, 0 FROM b "
        "UNION ALL SELECT 1, t.tx_id, t.type, t.body, NULL, t.index "
        f"FROM {qn(Transaction._meta.db_table)} t JOIN b ON t.block_id = b.id "
        "WHERE t.type = ANY(%s::varchar[]) "
        "UNION ALL SELECT 2, tx_id, issuer_id, holder_id, as_of, 0 "
        f"FROM {qn(Disclosure._meta.db_table)} WHERE chain_id = %s AND height = %s AND kind = %s",
        [chain_id, height, penetration.pg_text_array(sorted(penetration.STRUCTURE_TX_TYPES)),
         chain_id, height, DISCLOSURE_KIND])
    stamps = [at for part, _, _, _, at, _ in rows if part == 0]
    if not stamps:
        raise NotFound(f"No block {chain_id}#{height} is stored.", code="unknown_block")
    structure = [(tx_id, kind, json.loads(body)) for part, tx_id, kind, body, _, _ in
                 sorted((row for row in rows if row[0] == 1), key=lambda row: row[5])]
    disclosures = [(tx_id, issuer, holder, as_of)
                   for part, tx_id, issuer, holder, as_of, _ in rows if part == 2]
    return stamps[0], structure, disclosures


def _block_rows_orm(chain_id: str, height: int) -> tuple[datetime, list[StructureTx], list[DisclosureRow]]:
    block = Block.objects.filter(chain_id=chain_id, height=height).values_list("id", "timestamp").first()
    if block is None:
        raise NotFound(f"No block {chain_id}#{height} is stored.", code="unknown_block")
    block_id, timestamp = block
    structure = [
        (tx_id, kind, json.loads(body))
        for tx_id, kind, body in Transaction.objects.order_by().filter(
            block_id=block_id, type__in=penetration.STRUCTURE_TX_TYPES,
        ).order_by("index").values_list("tx_id", "type", "body")
    ]
    disclosures = list(Disclosure.objects.order_by().filter(
        chain_id=chain_id, height=height, kind=DISCLOSURE_KIND,
    ).values_list("tx_id", "issuer_id", "holder_id", "as_of"))
    return timestamp, structure, disclosures


def _block_trades_and_transfers(chain_id: str, height: int
                                ) -> tuple[list[trading.Trade], list[trading.Transfer], list[trading.Leg]]:
    """The block's trades and transfers, and their legs; on PostgreSQL in one query (`_fetchall`)."""
    if connection.vendor != "postgresql":
        stored = _trades(Trade.objects.order_by().filter(chain_id=chain_id, height=height))
        moved = _transfers(Transfer.objects.order_by().filter(chain_id=chain_id, height=height))
        return stored, moved, [t.leg() for t in stored] + [t.leg() for t in moved]
    qn = connection.ops.quote_name
    rows = _fetchall(
        "SELECT tx_id, chain_id, height, security, buyer, seller, quantity, price, executed_at "  # noqa: S608
        f"FROM {qn(Trade._meta.db_table)} WHERE chain_id = %s AND height = %s "
        "UNION ALL SELECT tx_id, chain_id, height, security, from_account, to_account, quantity, NULL, at "
        f"FROM {qn(Transfer._meta.db_table)} WHERE chain_id = %s AND height = %s",
        [chain_id, height, chain_id, height])
    trades: list[trading.Trade] = []
    transfers: list[trading.Transfer] = []
    legs: list[trading.Leg] = []
    for tx_id, chain, at_height, code, buyer, seller, quantity, price, at in rows:
        if price is not None:
            trades.append(trading.Trade(tx_id, chain, at_height, code, buyer, seller, quantity, price, at))
            legs.append(trading.Leg(tx_id, chain, at_height, code, seller, buyer, quantity, at, "trade"))
        else:  # a transfer: from_account, to_account in the buyer, seller places
            transfers.append(trading.Transfer(tx_id, chain, at_height, code, buyer, seller, quantity, at))
            legs.append(trading.Leg(tx_id, chain, at_height, code, buyer, seller, quantity, at, "transfer"))
    return trades, transfers, legs


def _fetchall(sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
    """The rows of a raw PostgreSQL query of the analysis. Timestamps are read with psycopg's
    compiled loader: Django's (which only swaps in its UTC object for the same instant) is pure
    Python, ~5 µs a value, and a block brings thousands of them."""
    with connection.cursor() as cursor:
        cursor.cursor.adapters.register_loader("timestamptz", TimestamptzLoader)
        cursor.execute(sql, params)
        return cursor.fetchall()


def _trades(rows: Any) -> list[trading.Trade]:
    columns = ("tx_id", "chain_id", "height", "security", "buyer", "seller", "quantity", "price",
               "executed_at")
    return [trading.Trade(*row) for row in rows.order_by().values_list(*columns)]


def _transfers(rows: Any) -> list[trading.Transfer]:
    columns = ("tx_id", "chain_id", "height", "security", "from_account", "to_account", "quantity", "at")
    return [trading.Transfer(*row) for row in rows.order_by().values_list(*columns)]


# --- the per-block service ---------------------------------------------------------------------


def block_analyse(*, chain_id: str, height: int, now: datetime | None = None) -> BlockAnalysis:
    """Run the per-block rules for one accepted block and raise what they find. Idempotent: a
    re-analysis finds the same fingerprints (alerts record a repeat) and opens no crossing twice.
    `now` fixes the clock due crossings are settled against (default: the chains' latest block).

    The cyclic garbage collector is paused meanwhile: a block makes ~10⁵ short-lived objects, whose
    allocations would otherwise set off collections, now and then of the whole heap (100–200 ms
    in the per-block benchmark). Nothing here forms reference cycles, so they are all freed by
    reference counting when `_block_analyse` returns, before the collector is back. Threads hand
    the interpreter over sooner meanwhile (`_quick_handoffs`), for the reads that run apart."""
    with own.gc_paused(), _quick_handoffs():
        return _block_analyse(chain_id=chain_id, height=height, now=now)


def _block_analyse(*, chain_id: str, height: int, now: datetime | None) -> BlockAnalysis:
    result = BlockAnalysis(chain_id=chain_id, height=height)
    lap = _Stopwatch(result.timings)
    with transaction.atomic():
        data = _block_data(chain_id, height)
        lap("load")
        apart = _reads_apart_possible()
        # Reads on second connections: the ring search, which needs only the block's legs, and
        # the positions (then roles) for a plan made from the cached structure.
        rings = _meanwhile(partial(_ring_search, data), apart=apart) if data.legs else None
        early = _reads_early(data) if apart and data.legs else None
        lap("reads_started")
        findings: list[Finding] = []
        if data.structure_txs:
            data.structure = structure_refresh(known={
                (chain_id, height): [(kind, body) for _, kind, body in data.structure_txs]})
            result.structure_rebuilt = True
            lap("structure")
            findings += _structure_findings(data.structure, data)
            lap("structure_rules")
        if data.trades or data.transfers:
            if data.structure is None:
                data.structure = penetration.ownership_structure()
            related: Callable[[], RelatedRows] | None = None
            if early is not None and early.holds_for(data.structure):
                plan, holdings, related = early.plan, early.holdings, early.related
            else:
                data.forget_structure()
                positions = _DatabasePositions(data, heads=dict(data.structure.heads))  # read just now
                plan = _crossings_plan(data)
                holdings = _holdings_meanwhile(plan, positions, apart=apart) if plan else None
            lap("crossings_plan")
            findings += _trade_findings(data, rings=rings, related=related)
            lap("trade_rules")
            if plan is not None and holdings is not None:
                held = holdings()
                lap("holdings")
                result.crossings_opened = _crossings_record(plan, held)
            lap("crossings_record")
        if data.disclosures:
            result.crossings_disclosed = _crossings_disclose(data.disclosures)
        raised = _raise(findings, at=now)
        lap("alerts")
        settled = _crossings_settle(now or _chains_clock_expression(data.timestamp), at=now) \
            if _crossings_maybe_due(now, data.timestamp) else _Settled()
        lap("settle")
        _count(result.findings, [*findings, *settled.findings])
        result.crossings_disclosed += settled.disclosed
        result.crossings_alerted = settled.alerted
        result.alerts_created = raised.created + settled.created
        result.alerts_repeated = raised.repeated + settled.repeated
    lap("commit")
    return result


class _Stopwatch:
    def __init__(self, into: dict[str, float]) -> None:
        self.into = into
        self.last = time.perf_counter()

    def __call__(self, stage: str) -> None:
        now = time.perf_counter()
        self.into[stage] = round(self.into.get(stage, 0.0) + (now - self.last) * 1000, 2)
        self.last = now


def _chains_clock() -> datetime | None:
    return Chain.objects.aggregate(clock=Max("head_timestamp"))["clock"]


def _crossings_maybe_due(now: datetime | None, fallback: datetime) -> bool:
    """Whether a pending crossing may be due by `now` (default: the chains' clock, else
    `fallback`): on PostgreSQL one probe of the pending crossings' index, which spares the locking
    read of `_crossings_settle` for the blocks (nearly all) that have nothing due."""
    if connection.vendor != "postgresql":
        return True
    qn = connection.ops.quote_name
    return bool(_fetchall(
        f"SELECT 1 FROM {qn(ThresholdCrossing._meta.db_table)} WHERE status = %s AND due_at <= "  # noqa: S608
        "COALESCE(%s::timestamptz, "
        f"(SELECT MAX(head_timestamp) FROM {qn(Chain._meta.db_table)}), %s) LIMIT 1",
        [ThresholdCrossing.Status.PENDING.value, now, fallback]))


def _chains_clock_expression(fallback: datetime) -> Coalesce:
    """`_chains_clock()` (or `fallback`) inside the query that uses it."""
    latest = Chain.objects.order_by().values(clock=Func(F("head_timestamp"), function="MAX"))
    return Coalesce(Subquery(latest[:1]), Value(fallback), output_field=DateTimeField())


# --- structure --------------------------------------------------------------------------------


def structure_refresh(*, fresh: bool = False, known: penetration.KnownBlocks | None = None
                      ) -> penetration.OwnershipStructure:
    """Bring the ownership structure up to date with the index (`fresh`: read it whole; `known`:
    structure transactions already read) and the materialised control groups with it (rewritten
    only when they may differ). Serialised on the `AnalyticsState` row."""
    with transaction.atomic(savepoint=False):  # nested in a block's analysis: all or nothing with it
        token = _state_count_refresh()
        structure = penetration.build_structure() if fresh else penetration.ownership_structure(known=known)
        if fresh or token != structure.groups_token:
            _groups_materialise(structure)
            AnalyticsState.objects.filter(pk=1).update(groups_token=structure.groups_token)
    return structure


def _state_count_refresh() -> str:
    """Lock the `AnalyticsState` row (it serialises structure refreshes), count this refresh and
    return the token of the materialised control groups, in one statement."""
    table = connection.ops.quote_name(AnalyticsState._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {table} SET structure_version = structure_version + 1, "  # noqa: S608
                       "structure_built_at = %s WHERE id = 1 RETURNING groups_token", [timezone.now()])
        row = cursor.fetchone()
    if row is None:  # the very first refresh
        AnalyticsState.objects.get_or_create(pk=1)
        return _state_count_refresh()
    return str(row[0])


def _groups_materialise(structure: penetration.OwnershipStructure) -> int:
    """Bring `ControlGroupMember` in line with the structure, touching only the rows that differ."""
    wanted = penetration.control_group_rows(structure)
    stored = {e: (g, c) for e, g, c in ControlGroupMember.objects.order_by().values_list(
        "entity_id", "group_key", "controller_id")}
    stale = [e for e, row in stored.items() if wanted.get(e) != row]
    for start in range(0, len(stale), 5000):
        ControlGroupMember.objects.order_by().filter(entity_id__any_of=stale[start:start + 5000]).delete()
    ControlGroupMember.objects.bulk_create(
        [ControlGroupMember(entity_id=e, group_key=g, controller_id=c)
         for e, (g, c) in sorted(wanted.items()) if stored.get(e) != (g, c)],
        batch_size=2000,
    )
    return len(wanted)


def _structure_findings(structure: penetration.OwnershipStructure, data: _BlockData | None) -> list[Finding]:
    """Circular holdings and broker stakes. For a block (`data`), circular holdings whose holding
    cycle one of its organisation-to-organisation shareholdings belongs to, and broker stakes of
    the groups around what it touched; for a recompute (`data` None), all of them."""
    chain, height = (data.chain_id, data.height) if data else (None, None)
    kind_of = structure.inputs.kind_of
    edges: dict[tuple[str, str], list[str]] = defaultdict(list)  # org → org shareholdings in the block
    if data is not None:
        for tx_id, kind, body in data.structure_txs:
            holder, issuer = str(body.get("holder")), str(body.get("issuer"))
            if kind == "shareholding" and kind_of(holder) != "person" and kind_of(issuer) != "person":
                edges[(holder, issuer)].append(tx_id)
    findings: list[Finding] = []
    if data is None or edges:
        for cycle in own.find_cycles(structure.graph):
            members = set(cycle.members)
            tx_ids = sorted({t for (h, i), ts in edges.items() if h in members and i in members for t in ts})
            if data is None or tx_ids:
                findings += own.circular_holding_findings([cycle], chain=chain, height=height, tx_ids=tx_ids)
        for loop in structure.dropped_loops:
            tx_ids = sorted({t for (h, i), ts in edges.items() if h in loop and i in loop for t in ts})
            if data is None or tx_ids:
                findings.append(Finding(
                    "circular_holding", "circular_holding:closed:" + ">".join(loop), chain, height,
                    tuple(tx_ids), loop, {"cycle": list(loop), "closed": True, "members": len(loop)}))
    findings += _broker_findings(structure, data)
    return findings


def _broker_findings(structure: penetration.OwnershipStructure, data: _BlockData | None) -> list[Finding]:
    """《证券公司股权管理规定》 from the stakes in securities firms alone (a small graph of the
    holdings whose issuer is a firm) and the control groups."""
    groups = structure.groups
    stakes, controlled = structure.broker_stakes()
    found = trading.broker_stake_findings(stakes, controlled, chain=data.chain_id if data else None,
                                          height=data.height if data else None)
    if data is None:
        return found
    touched = data.touched_entities()
    near = touched | {m for e in touched for m in groups.members(groups.group_of(e))}
    tx_ids = tuple(t for t, _, _ in data.structure_txs[:50])
    return [Finding(f.code, f.fingerprint, f.chain, f.height, tx_ids, f.entities, f.facts)
            for f in found if set(f.entities) & near]


# --- reads on a second connection ----------------------------------------------------------------

#: Threads for `_meanwhile`, each reading on its own connection (from the pool, given back after).
_APART = ThreadPoolExecutor(max_workers=3, thread_name_prefix="analysis-read")

#: How long a thread keeps the interpreter while another wants it, during an analysis (Python's
#: default is 5 ms): a reading thread whose rows have arrived waits at most this long to take
#: them. With the default, such waits added 10–20 ms to a block in the per-block benchmark.
HANDOFF_INTERVAL = 0.0005
_handoffs_lock = threading.Lock()
_handoffs_users = 0
_handoffs_default = 0.005


@contextmanager
def _quick_handoffs() -> Iterator[None]:
    """`HANDOFF_INTERVAL` as the interpreter's switch interval while the block is analysed (the
    setting is process-wide: the first analysis in sets it, the last one out restores it)."""
    global _handoffs_users, _handoffs_default
    with _handoffs_lock:
        if _handoffs_users == 0:
            _handoffs_default = sys.getswitchinterval()
            sys.setswitchinterval(min(HANDOFF_INTERVAL, _handoffs_default))
        _handoffs_users += 1
    try:
        yield
    finally:
        with _handoffs_lock:
            _handoffs_users -= 1
            if _handoffs_users == 0:
                sys.setswitchinterval(_handoffs_default)


def _reads_apart_possible() -> bool:
    """Whether reads of rows ingestion wrote may run on another connection: on PostgreSQL with the
    connection pool, and when the analysis transaction is the outermost one, so that everything
    such a read needs is committed and visible to another connection (inside a caller's
    transaction, or a test's, it might not be)."""
    return connection.vendor == "postgresql" and len(connection.atomic_blocks) == 1 \
        and getattr(connection, "pool", None) is not None


def _meanwhile(read: Callable[[], _T], *, apart: bool) -> Callable[[], _T]:
    """`read`, collected by calling the result. `apart` (see `_reads_apart_possible`): it starts now
    on a second connection while this one goes on, so PostgreSQL works on it while Python works
    on the rest of the analysis (two cores instead of one); otherwise it is read here and now.
    Only for reads that need nothing the analysis itself writes (not the control groups)."""
    if apart:
        return _APART.submit(_read_apart, read).result
    value = read()
    return lambda: value


def _read_apart(read: Callable[[], _T]) -> _T:
    """`read` in autocommit: it reads only rows ingestion committed (no transaction to open)."""
    try:
        return read()
    finally:
        connection.close()  # this thread's connection, back to the pool


# --- trades -----------------------------------------------------------------------------------


def _trade_findings(data: _BlockData, *, rings: Callable[[], list[Finding]] | None = None,
                    related: Callable[[], RelatedRows] | None = None) -> list[Finding]:
    """Wash trades, related-party trades and trade rings of the block's trades and transfers.
    `rings`, `related`: the ring search and the roles and stakes of `_BlockData.related_candidates`,
    started already (`_meanwhile`)."""
    holder_of = data.holders()
    findings: list[Finding] = []
    if data.trades and holder_of:
        findings += trading.wash_trades(data.trades, holder_of, data.holder_groups().__getitem__)
    findings += _rings_named(data, rings() if rings is not None else _ring_search(data))
    candidates = data.related_candidates()
    if candidates:
        groups = data.groups()
        parties = _related_parties(*(related() if related is not None else _roles_and_stakes(candidates)),
                                   groups)
        linked = {e for e in candidates if parties.may_relate(e)}  # others have no reasons
        trades = [t for t in data.trades if holder_of.get(t.buyer_account) in linked
                  and holder_of.get(t.seller_account) in linked]
        findings += trading.related_party_trades(trades, holder_of, groups.group_of, parties)
    return findings


def _related_parties(role_rows: Iterable[RoleRow], stake_rows: Iterable[StakeRow],
                     groups: own.ControlGroups) -> own.RelatedParties:
    """The related-party test from the active roles of some entities and the direct stakes among
    them (`_roles_and_stakes`), with the control groups already loaded."""
    roles = own.RoleIndex(own.Role(o, p, r, True) for o, p, r in role_rows)
    stakes = [own.Holding(h, i, s, t) for h, i, s, t in stake_rows if 0 < s <= t]
    kinds = penetration.kinds_by_form(e for h in stakes for e in (h.holder, h.issuer))
    graph = own.OwnershipGraph.build(stakes, kinds, oversubscribed="scale")
    return own.RelatedParties(graph, groups, roles)


RoleRow = tuple[str, str, str]  # (org, person, role)
StakeRow = tuple[str, str, int, int]  # (holder, issuer, shares, total shares)
RelatedRows = tuple[list[RoleRow], list[StakeRow]]


def _roles_and_stakes(entities: set[str]) -> RelatedRows:
    """Active roles of these entities (as organisation or person) and the positive holdings among
    them."""
    if connection.vendor != "postgresql":
        return (list(Role.objects.order_by().filter(
                    Q(org_id__any_of=entities) | Q(person_id__any_of=entities), active=True,
                ).values_list("org_id", "person_id", "role")),
                list(Holding.objects.order_by().filter(
                    holder_id__any_of=entities, issuer_id__any_of=entities, shares__gt=0,
                ).values_list("holder_id", "issuer_id", "shares", "total_shares")))
    qn = connection.ops.quote_name
    ids = penetration.pg_text_array(sorted(entities))
    # The array goes as a constant four times, not once through a CTE: PostgreSQL hashes a
    # constant array for `= ANY`, and searches one that is not element by element (50× slower).
    rows = _fetchall(
        "SELECT org_id, person_id, role, NULL::bigint, NULL::bigint "  # noqa: S608
        f"FROM {qn(Role._meta.db_table)} "
        "WHERE active AND (org_id = ANY(%s::varchar[]) OR person_id = ANY(%s::varchar[])) "
        "UNION ALL SELECT holder_id, issuer_id, NULL, shares, total_shares "
        f"FROM {qn(Holding._meta.db_table)} "
        "WHERE holder_id = ANY(%s::varchar[]) AND issuer_id = ANY(%s::varchar[]) AND shares > 0",
        [ids, ids, ids, ids])
    return ([(o, p, r) for o, p, r, _, _ in rows if r is not None],
            [(h, i, q, t) for h, i, r, q, t in rows if r is None])


Band = tuple[int, int]  # quantities a ring leg may have, given a leg of the block
LegKey = tuple[str, str, str]  # (chain, security, account): account numbers are unique per chain


def _ring_search(data: _BlockData) -> list[Finding]:
    """Trade rings through the block's legs, their holders not named yet (`_rings_named`). Earlier
    legs are fetched by walking forward from the new legs' targets: same chain and security
    (account numbers are unique per chain only), source on the frontier, inside the 30-minute
    window and the quantity band of the leg the walk started from; at most `RING_ROUNDS` rounds of
    one query. Every leg of a ring through a new leg is reached that way, so the window is never
    loaded whole. Needs nothing but the block's legs: it may run before the structure is read."""
    new = data.legs
    if not new:
        return []
    lo = min(leg.at for leg in new) - trading.RING_WINDOW
    hi = max(leg.at for leg in new)
    legs = {(leg.chain, leg.tx_id): leg for leg in new}
    frontier: dict[LegKey, Band] = {}
    for leg in new:  # the band of the leg's quantity, widened into the frontier (inline: 10³ legs)
        # Every leg of a ring through a leg of quantity q is within 10 % of the ring's first leg
        # q₀, and so is q: every leg lies in [q·0.9/1.1, q·1.1/0.9] ⊂ [⌊0.8 q⌋, ⌈1.25 q⌉].
        key, q = (leg.chain, leg.security, leg.target), leg.quantity
        lo_q, hi_q = q * 4 // 5, -(-q * 5 // 4)
        known = frontier.get(key)
        frontier[key] = (lo_q, hi_q) if known is None else (min(known[0], lo_q), max(known[1], hi_q))
    reached = dict(frontier)
    for _ in range(RING_ROUNDS):
        if not frontier:
            break
        found = _legs_from(frontier, lo, hi)
        step: dict[LegKey, Band] = {}
        for leg in found:
            band = frontier.get((leg.chain, leg.security, leg.source))
            if band is None or not band[0] <= leg.quantity <= band[1]:
                continue
            legs.setdefault((leg.chain, leg.tx_id), leg)
            key = (leg.chain, leg.security, leg.target)
            known = reached.get(key)
            if known is None or band[0] < known[0] or band[1] > known[1]:
                _widen(step, key, band)
                _widen(reached, key, band)
        frontier = step
    new_ids = {leg.tx_id for leg in new}
    try:
        rings = trading.trade_rings(list(legs.values()), new_ids)
    except trading.RingSearchBudgetExceeded as exceeded:
        log.warning("trade ring search budget exhausted in %s#%s", data.chain_id, data.height)
        rings = exceeded.findings
    return rings


def _rings_named(data: _BlockData, rings: Iterable[Finding]) -> list[Finding]:
    """The rings with the holders of their accounts as entities, from the structure's inputs (a
    ring stays on one chain, and its new leg is on the block's)."""
    assert data.structure is not None, "set the block's structure first"
    known = data.structure.inputs.holders_on(data.chain_id)
    out = []
    for f in rings:
        accounts = f.facts.get("accounts") or ()
        entities = tuple(sorted({h for a in accounts  # type: ignore[attr-defined]
                                 if (h := known.get(str(a))) is not None}))
        out.append(Finding(f.code, f.fingerprint, f.chain, f.height, f.tx_ids, entities, f.facts))
    return out


def _widen(bands: dict[LegKey, Band], key: LegKey, band: Band) -> None:
    known = bands.get(key)
    bands[key] = band if known is None else (min(known[0], band[0]), max(known[1], band[1]))


def _legs_from(frontier: Mapping[LegKey, Band], lo: datetime, hi: datetime) -> list[trading.Leg]:
    """Trades and transfers of a frontier (chain, security, source account) inside its quantity
    band and the time window. PostgreSQL: one probe per frontier key of the (security, source
    account, time) indexes; elsewhere a superset through the ORM, filtered by the caller."""
    if connection.vendor != "postgresql":
        chains = {c for c, _, _ in frontier}
        securities = {s for _, s, _ in frontier}
        sources = {a for _, _, a in frontier}
        return [t.leg() for t in _trades(Trade.objects.order_by().filter(
            chain_id__in=chains, security__any_of=securities, seller__any_of=sources,
            executed_at__gte=lo, executed_at__lte=hi))
        ] + [t.leg() for t in _transfers(Transfer.objects.order_by().filter(
            chain_id__in=chains, security__any_of=securities, from_account__any_of=sources,
            at__gte=lo, at__lte=hi))]
    return _legs_from_indexed(frontier, lo, hi)


def _legs_from_indexed(frontier: Mapping[LegKey, Band], lo: datetime, hi: datetime
                       ) -> list[trading.Leg]:
    keys, bands = zip(*frontier.items(), strict=True)
    chains, securities, accounts = zip(*keys, strict=True)
    lows, highs = zip(*bands, strict=True)
    arrays = [penetration.pg_text_array(chains), penetration.pg_text_array(securities),
              penetration.pg_text_array(accounts), "{" + ",".join(map(str, lows)) + "}",
              "{" + ",".join(map(str, highs)) + "}"]
    qn = connection.ops.quote_name
    # The frontier is sent once; OFFSET 0 keeps each LATERAL subquery a probe of the
    # (security, source, time) index.
    sql = (
        "WITH k AS MATERIALIZED (SELECT * FROM unnest(%s::varchar[], %s::varchar[], %s::varchar[], "  # noqa: S608
        "%s::bigint[], %s::bigint[]) AS k(chain_id, security, account, qlo, qhi)) "
        "SELECT 'trade', t.* FROM k CROSS JOIN LATERAL (SELECT tx_id, chain_id, height, "
        f"security, seller, buyer, quantity, executed_at FROM {qn(Trade._meta.db_table)} WHERE "
        "security = k.security AND seller = k.account AND chain_id = k.chain_id "
        "AND executed_at BETWEEN %s AND %s AND quantity BETWEEN k.qlo AND k.qhi OFFSET 0) t "
        "UNION ALL SELECT 'transfer', x.* FROM k CROSS JOIN LATERAL (SELECT tx_id, chain_id, "
        f"height, security, from_account, to_account, quantity, at FROM {qn(Transfer._meta.db_table)} "
        "WHERE security = k.security AND from_account = k.account AND chain_id = k.chain_id "
        "AND at BETWEEN %s AND %s AND quantity BETWEEN k.qlo AND k.qhi OFFSET 0) x"
    )
    return [trading.Leg(tx_id, chain, height, security, source, target, quantity, at, kind)
            for kind, tx_id, chain, height, security, source, target, quantity, at
            in _fetchall(sql, [*arrays, lo, hi, lo, hi])]


# --- threshold crossings ----------------------------------------------------------------------


Key = tuple[str, str, str]  # (chain, account, security)


@dataclass(slots=True)
class _Keys:
    """Position keys as three parallel columns (the arrays a query sends); a key's number is its
    place in them."""

    chains: list[str] = field(default_factory=list)
    accounts: list[str] = field(default_factory=list)
    securities: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.chains)

    def numbers(self) -> dict[Key, int]:
        """Each key's number, by key."""
        return {key: n for n, key in enumerate(zip(self.chains, self.accounts, self.securities, strict=True))}


class _DatabasePositions:
    """Positions as of the analysed block: the stored (current) position, minus the legs of later
    blocks of the same chain (none, unless analysis lags behind ingestion)."""

    def __init__(self, data: _BlockData, heads: Mapping[str, int] | None = None) -> None:
        self.data = data
        self._lags: bool | None = None
        if heads is not None and data.chain_id in heads:
            self._lags = heads[data.chain_id] > data.height

    def lags(self) -> bool:
        """Whether the chain already has blocks above the analysed one."""
        if self._lags is None:
            heads = dict(penetration.chain_heads())
            self._lags = heads.get(self.data.chain_id, -1) > self.data.height
        return self._lags

    def quantities(self, keys: _Keys) -> dict[int, int]:
        """The nonzero positions at these keys, by key number."""
        if not keys:
            return {}
        out = _stored_positions(keys)
        chain, height = self.data.chain_id, self.data.height
        if self.lags():  # undo the later blocks' legs
            number = keys.numbers()
            securities = {s for c, s in zip(keys.chains, keys.securities, strict=True) if c == chain}
            later = [t.leg() for t in _trades(Trade.objects.order_by().filter(
                chain_id=chain, height__gt=height, security__any_of=securities))]
            later += [t.leg() for t in _transfers(Transfer.objects.order_by().filter(
                chain_id=chain, height__gt=height, security__any_of=securities))]
            for leg in later:
                for account, sign in ((leg.target, 1), (leg.source, -1)):
                    n = number.get((leg.chain, account, leg.security))
                    if n is not None:
                        out[n] = out.get(n, 0) - sign * leg.quantity
        return {n: q for n, q in out.items() if q}


Pair = tuple[str, str]  # (control group, issuer)
Holdings = dict[Pair, tuple[int, int]]  # → (holding before the block, after it), when they differ


def _holdings(plan: _CrossingPlan, positions: _DatabasePositions | _ReplayPositions) -> Holdings:
    """(before, after) of every touched (group, issuer) holding the block changed (only those can
    cross a step). A holding sums the group's accounts on every chain over every security of the
    issuer (an account never counts below zero): the positions of every account of every member in
    the securities `wanted` for it (`_holding_keys`). The holding before the block differs only at
    the block's own keys (position − the block's net change)."""
    keys, pair_of = _holding_keys(plan)
    return _holdings_from(plan, keys, pair_of, positions.quantities(keys))


def _holdings_meanwhile(plan: _CrossingPlan, positions: _DatabasePositions, *, apart: bool
                        ) -> Callable[[], Holdings]:
    """`_holdings`, with only the positions read `_meanwhile`: the keys are made and the sums
    taken on the calling thread, so a reading thread does little but wait for PostgreSQL and
    hardly competes for the interpreter with the analysis."""
    keys, pair_of = _holding_keys(plan)
    quantities = _meanwhile(partial(positions.quantities, keys), apart=apart)
    return lambda: _holdings_from(plan, keys, pair_of, quantities())


def _holding_keys(plan: _CrossingPlan) -> tuple[_Keys, list[Pair]]:
    """The position keys of the plan's `wanted` securities in every account of each member, and
    the (group, issuer) holding each key counts for."""
    issuer_of, accounts_of = plan.issuer_of, plan.accounts_of
    keys = _Keys()
    chains, accounts, securities = keys.chains, keys.accounts, keys.securities
    pair_of: list[Pair] = []  # per key number
    for member, wanted in plan.wanted.items():
        mine = accounts_of.get(member)
        if not mine:
            continue
        group = plan.member_group[member]
        for security in wanted:
            pair = (group, issuer_of[security])
            for chain, account in mine:
                chains.append(chain)
                accounts.append(account)
                securities.append(security)
                pair_of.append(pair)
    return keys, pair_of


def _holdings_from(plan: _CrossingPlan, keys: _Keys, pair_of: list[Pair], quantities: Mapping[int, int]
                   ) -> Holdings:
    chains, accounts, securities, chain = keys.chains, keys.accounts, keys.securities, plan.data.chain_id
    after: dict[Pair, int] = dict.fromkeys(plan.touched, 0)
    held: dict[tuple[str, str], int] = {}  # the nonzero positions on the block's chain, after it
    for n, quantity in quantities.items():
        if quantity > 0:
            after[pair_of[n]] += quantity
        if chains[n] == chain:
            held[(accounts[n], securities[n])] = quantity
    shift: dict[Pair, int] = {}  # before − after
    account_group, listed = plan.account_group, plan.listed
    for (account, security), change in plan.delta.items():
        if change:
            now_q = held.get((account, security), 0)
            was_q = now_q - change
            pair = (account_group[account], listed[security])
            shift[pair] = shift.get(pair, 0) + (was_q if was_q > 0 else 0) - (now_q if now_q > 0 else 0)
    return {pair: (after[pair] + moved, after[pair]) for pair, moved in shift.items() if moved}


def _stored_positions(keys: _Keys) -> dict[int, int]:
    """The stored positions at these keys, by key number (a key left out holds nothing): on
    PostgreSQL one join against the three arrays (index lookups on the unique key) returning key
    numbers, elsewhere a superset query filtered here."""
    if connection.vendor == "postgresql":
        table = connection.ops.quote_name(Position._meta.db_table)
        # LATERAL … LIMIT 1 keeps this a loop of unique-index lookups: a hash join would read the
        # whole table for a few thousand keys.
        sql = ("SELECT k.n - 1, p.quantity FROM "  # noqa: S608
               "unnest(%s::varchar[], %s::varchar[], %s::varchar[]) WITH ORDINALITY "
               "AS k(chain_id, account, security, n) "
               f"CROSS JOIN LATERAL (SELECT quantity FROM {table} WHERE chain_id = k.chain_id "
               "AND account = k.account AND security = k.security LIMIT 1) p WHERE p.quantity <> 0")
        with connection.cursor() as cursor:
            cursor.execute(sql, [penetration.pg_text_array(column)
                                 for column in (keys.chains, keys.accounts, keys.securities)])
            return dict(cursor.fetchall())
    number = keys.numbers()
    by_chain: dict[str, set[str]] = defaultdict(set)
    for chain, account in zip(keys.chains, keys.accounts, strict=True):
        by_chain[chain].add(account)
    where = Q()
    for chain, names in by_chain.items():
        where |= Q(chain_id=chain, account__any_of=names)
    rows = Position.objects.order_by().filter(where, security__any_of=set(keys.securities)).exclude(
        quantity=0).values_list("chain_id", "account", "security", "quantity")
    return {n: q for c, a, s, q in rows if (n := number.get((c, a, s))) is not None}


class _ReplayPositions:
    """Positions replayed in memory from the first block on (`analytics_recompute`)."""

    def __init__(self) -> None:
        self.positions: dict[Key, int] = defaultdict(int)

    def apply(self, legs: Iterable[trading.Leg]) -> None:
        for leg in legs:
            self.positions[(leg.chain, leg.target, leg.security)] += leg.quantity
            self.positions[(leg.chain, leg.source, leg.security)] -= leg.quantity

    def quantities(self, keys: _Keys) -> dict[int, int]:
        known = self.positions
        return {n: q for n, key in enumerate(zip(keys.chains, keys.accounts, keys.securities, strict=True))
                if (q := known.get(key, 0))}


@dataclass(slots=True)
class _CrossingPlan:
    """What a block's threshold crossings need besides the positions (`_crossings_plan`)."""

    data: _BlockData
    listed: dict[str, str]  # traded security → its issuer (listed ones only)
    issuer_of: dict[str, str]  # every listing of the traded issuers → issuer
    totals: dict[str, int]  # issuer → total shares over its listings
    account_group: dict[str, str]  # the block's known accounts → their holder's control group
    touched: dict[tuple[str, str], None]  # the (group, issuer) holdings the block's legs touched
    delta: dict[tuple[str, str], int]  # the block's net change per (account, security)
    groups: own.ControlGroups
    member_group: dict[str, str]  # every member of a touched group → the group
    wanted: dict[str, set[str]]  # member → securities of its group's touched issuers
    accounts_of: Mapping[str, tuple[tuple[str, str], ...]]  # member → its (chain, account)s


@dataclass(slots=True)
class _EarlyReads:
    """A block's crossing plan and related-party candidates made from the structure cached before
    the block's structure refresh, with their positions and roles read meanwhile (`_reads_early`)."""

    structure: penetration.OwnershipStructure
    plan: _CrossingPlan | None
    holdings: Callable[[], Holdings] | None
    related: Callable[[], RelatedRows] | None

    def holds_for(self, structure: penetration.OwnershipStructure) -> bool:
        """Whether the plan and the candidates are also `structure`'s: they depend on the
        structure only through the accounts' holders, the listings and the control groups, and a
        refresh that changes none of them keeps those very objects (changed input tables are
        copied, unchanged ones shared)."""
        now, then = structure.inputs, self.structure.inputs  # holders and accounts_of go together
        return (now.holders is then.holders and now.listings is then.listings
                and structure.computed_groups is self.structure.computed_groups)


def _reads_early(data: _BlockData) -> _EarlyReads | None:
    """Start reading the positions for the block's crossings, and the roles and stakes of its
    related-party candidates, before the structure is brought up to date, from the structure this
    process has cached (when it has its control groups): the positions read (the longest read of
    the analysis) then overlaps the structure refresh. The caller keeps them only if they
    `holds_for` the refreshed structure. Only with reads apart (`_reads_apart_possible`)."""
    cached = penetration.cached_structure()
    if cached is None or cached.computed_groups is None:
        return None
    data.structure = cached
    plan = _crossings_plan(data)
    holdings = _holdings_meanwhile(plan, _DatabasePositions(data), apart=True) if plan else None
    candidates = data.related_candidates()
    related = _meanwhile(partial(_roles_and_stakes, candidates), apart=True) if candidates else None
    data.structure = None  # the analysis reads the current one
    return _EarlyReads(cached, plan, holdings, related)


def _crossings_open(data: _BlockData, positions: _DatabasePositions | _ReplayPositions) -> int:
    """Open a `ThresholdCrossing` for every 5 % step a (control group, listed issuer) holding
    crossed in this block (`_crossings_plan`, then `_crossings_record` with the positions read)."""
    plan = _crossings_plan(data)
    return 0 if plan is None else _crossings_record(plan, _holdings(plan, positions))


def _crossings_plan(data: _BlockData) -> _CrossingPlan | None:
    """The (control group, listed issuer) holdings the block's trades and transfers touched, and the
    positions to read for them: every security of the issuer in every account of every member of
    the group (`wanted`). None when the block touches no listed security of a known account."""
    traded = {leg.security for leg in data.legs}
    holder_of = data.holders()
    if not traded or not holder_of:
        return None
    assert data.structure is not None
    listings, listings_of = data.structure.inputs.listings, data.structure.inputs.listings_of
    listed = {code: listings[code][0] for code in traded if code in listings}
    securities_of = {issuer: listings_of[issuer] for issuer in set(listed.values())}  # all their listings
    issuer_of = {code: issuer for issuer, codes in securities_of.items() for code in codes}
    totals = {issuer: sum(listings[code][1] for code in codes) for issuer, codes in securities_of.items()}
    legs = [leg for leg in data.legs if leg.security in listed]
    if not legs:
        return None
    groups = data.groups()
    account_group = data.account_groups()
    # the touched (group, issuer) holdings; the block's net change per (account, security) of a
    # known account (all on the block's chain)
    touched: dict[tuple[str, str], None] = {}
    delta: dict[tuple[str, str], int] = defaultdict(int)
    for leg in legs:
        issuer = listed[leg.security]
        if (group := account_group.get(leg.source)) is not None:
            touched[(group, issuer)] = None
            delta[(leg.source, leg.security)] -= leg.quantity
        if (group := account_group.get(leg.target)) is not None:
            touched[(group, issuer)] = None
            delta[(leg.target, leg.security)] += leg.quantity
    known_members = groups.members_by_group  # a group not in it is its only member
    wanted: dict[str, set[str]] = defaultdict(set)  # member → securities of its group's touched issuers
    member_group: dict[str, str] = {}
    for group, issuer in touched:
        securities = securities_of[issuer]
        for member in known_members.get(group) or (group,):
            wanted[member] |= securities
            member_group[member] = group
    return _CrossingPlan(data, listed, issuer_of, totals, account_group, touched,
                         dict(delta), groups, member_group, dict(wanted),
                         data.structure.inputs.accounts_of)


def _crossings_record(plan: _CrossingPlan, holdings: Holdings) -> int:
    """Store the crossings of the changed holdings whose 5 % step changed (`total_shares` sums the
    issuer's listings)."""
    data, totals, steps = plan.data, plan.totals, trading.STEPS_PER_WHOLE
    # = threshold_step_change, inlined
    crossed = [pair for pair, (before_q, after_q) in holdings.items() if (total := totals.get(pair[1], 0)) > 0
               and max(before_q, 0) * steps // total != max(after_q, 0) * steps // total]

    rows: list[ThresholdCrossing] = []
    for group, issuer in sorted(crossed):
        before_q, after_q = holdings[(group, issuer)]
        crossings = trading.threshold_crossings(
            {(group, issuer): before_q}, {(group, issuer): after_q}, totals, at=data.timestamp,
            chain=data.chain_id, height=data.height, tx_ids=_touching(plan, group, issuer))
        rows += [ThresholdCrossing(
            chain_id=data.chain_id, height=data.height, group_key=group, issuer_id=issuer, step=c.step,
            direction=c.direction, members=sorted(plan.groups.members(group)), tx_ids=list(c.tx_ids),
            before_quantity=c.before, after_quantity=c.after, total_shares=c.total_shares,
            crossed_at=c.at, due_at=trading.disclosure_due(c.at),
        ) for c in crossings]
    if rows:
        ThresholdCrossing.objects.bulk_create(rows, ignore_conflicts=True)
    return len(rows)


def _touching(plan: _CrossingPlan, group: str, issuer: str) -> list[str]:
    """The block's transactions with a leg in the issuer's securities on an account of the group."""
    groups, listed = plan.account_group, plan.listed
    return sorted({leg.tx_id for leg in plan.data.legs if listed.get(leg.security) == issuer
                   and group in (groups.get(leg.source), groups.get(leg.target))})


def _crossing(row: ThresholdCrossing) -> trading.Crossing:
    return trading.Crossing(row.group_key, row.issuer_id, row.step, row.direction,  # type: ignore[arg-type]
                            row.before_quantity, row.after_quantity, row.total_shares, row.crossed_at,
                            row.chain_id, row.height, tuple(row.tx_ids))


def _resolve(pending: Sequence[ThresholdCrossing], disclosures: Sequence[trading.Disclosure]) -> int:
    """Mark the crossings a disclosure covers (by a group member, filed in time) as disclosed. The
    group is the one recorded at the crossing together with the entity's current group."""
    if not pending or not disclosures:
        return 0
    groups = penetration.stored_groups({m for c in pending for m in c.members})
    by_issuer: dict[str, list[trading.Disclosure]] = defaultdict(list)
    for d in sorted(disclosures, key=lambda d: (d.filed_at or d.as_of, d.tx_id)):
        by_issuer[d.issuer].append(d)
    now = timezone.now()
    resolved: list[ThresholdCrossing] = []
    for row in pending:
        members = set(row.members) | set(groups.members(row.group_key))
        crossing = _crossing(row)
        match = next((d for d in by_issuer.get(row.issuer_id, ())
                      if trading.is_disclosed(crossing, [d], members)), None)
        if match is not None:
            row.status = ThresholdCrossing.Status.DISCLOSED
            row.disclosure_tx_id = match.tx_id
            row.resolved_at = now
            resolved.append(row)
    if resolved:
        ThresholdCrossing.objects.bulk_update(resolved, ["status", "disclosure_tx_id", "resolved_at"])
    return len(resolved)


def _crossings_disclose(disclosures: Sequence[trading.Disclosure]) -> int:
    """Disclosures in the analysed block resolve the pending crossings they cover."""
    pending = list(ThresholdCrossing.objects.select_for_update().filter(
        issuer_id__any_of={d.issuer for d in disclosures}, status=ThresholdCrossing.Status.PENDING))
    return _resolve(pending, disclosures)


@dataclass(slots=True)
class _Settled:
    disclosed: int = 0
    alerted: int = 0
    created: int = 0
    repeated: int = 0
    findings: list[Finding] = field(default_factory=list)
    more: bool = False


def _crossings_settle(clock: datetime | Coalesce, *, at: datetime | None = None,
                      skip_existing: bool = False) -> _Settled:
    """Crossings due by `clock`: disclosed if a covering disclosure was filed in time, else raised
    as `threshold_crossing` alerts (linked from the crossing). At most `SETTLE_BATCH` per call;
    `more` says whether others are due."""
    settled = _Settled()
    due = list(ThresholdCrossing.objects.select_for_update(skip_locked=True).filter(
        status=ThresholdCrossing.Status.PENDING, due_at__lte=clock,
    ).order_by("due_at", "id")[:SETTLE_BATCH + 1])
    settled.more = len(due) > SETTLE_BATCH
    due = due[:SETTLE_BATCH]
    if not due:
        return settled
    earliest = min(c.crossed_at for c in due) - trading.DISCLOSURE_WINDOW
    filed = Block.objects.filter(chain_id=OuterRef("chain_id"), height=OuterRef("height")).values(
        "timestamp")[:1]
    disclosures = [
        trading.Disclosure(tx_id, issuer, holder, DISCLOSURE_KIND, as_of, filed_at)
        for tx_id, issuer, holder, as_of, filed_at in Disclosure.objects.order_by().filter(
            issuer_id__any_of={c.issuer_id for c in due}, kind=DISCLOSURE_KIND,
        ).annotate(filed_at=Subquery(filed)).filter(filed_at__gte=earliest).values_list(
            "tx_id", "issuer_id", "holder_id", "as_of", "filed_at")
    ]
    settled.disclosed = _resolve(due, disclosures)
    undisclosed = [c for c in due if c.status == ThresholdCrossing.Status.PENDING]
    if not undisclosed:
        return settled
    settled.findings = [trading.crossing_finding(_crossing(c), c.members) for c in undisclosed]
    raised = _raise(settled.findings, at=at, skip_existing=skip_existing)
    settled.created, settled.repeated = raised.created, raised.repeated
    now = timezone.now()
    for row, finding in zip(undisclosed, settled.findings, strict=True):
        row.status = ThresholdCrossing.Status.ALERTED
        row.resolved_at = now
        row.alert_id = raised.alert_ids.get(finding.fingerprint)
    ThresholdCrossing.objects.bulk_update(undisclosed, ["status", "resolved_at", "alert"])
    settled.alerted = len(undisclosed)
    return settled


# --- raising alerts ---------------------------------------------------------------------------


@dataclass(slots=True)
class _Raised:
    created: int = 0
    repeated: int = 0
    alert_ids: dict[str, int] = field(default_factory=dict)


def _raise(findings: Sequence[Finding], *, at: datetime | None = None, skip_existing: bool = False
           ) -> _Raised:
    """Raise the distinct fingerprints of `findings` through `alerts_raise`: a fixed number of
    queries however many there are (names, existing alerts, bulk writes). `skip_existing`
    (recompute) leaves alerts that already exist untouched instead of recording a repeat."""
    raised = _Raised()
    if not findings:
        return raised
    unique = list({f.fingerprint: f for f in findings}.values())
    if skip_existing:
        known = dict(Alert.objects.order_by().filter(fingerprint__any_of=[f.fingerprint for f in unique])
                     .values_list("fingerprint", "id"))
        raised.alert_ids.update(known)
        unique = [f for f in unique if f.fingerprint not in known]
        if not unique:
            return raised
    names = dict(Entity.objects.order_by().filter(id__any_of={str(e) for f in unique for e in _named(f)})
                 .values_list("id", "name"))
    occurrences = []
    for finding in unique:
        title_zh, title_en, detail_zh, detail_en = alert_text(finding, names)
        occurrences.append(alert_occurrence(
            code=finding.code, severity=severity_for(finding.code), fingerprint=finding.fingerprint,
            title_zh=title_zh, title_en=title_en, detail_zh=detail_zh, detail_en=detail_en,
            chain_id=finding.chain or "", block_height=finding.height, tx_ids=finding.tx_ids,
            entities=finding.entities, evidence={"rule": finding.code, "facts": _json_safe(finding.facts)},
            at=at,
        ))
    for finding, result in zip(unique, alerts_raise(occurrences=occurrences), strict=True):
        raised.alert_ids[finding.fingerprint] = result.alert.pk
        if result.created:
            raised.created += 1
        else:
            raised.repeated += 1
    return raised


def _named(finding: Finding) -> set[str]:
    f = finding.facts
    out = set(finding.entities)
    for key in ("group", "issuer", "buyer", "seller"):
        if isinstance(f.get(key), str):
            out.add(str(f[key]))
    return out


def _json_safe(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_json_safe(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


# --- alert text -------------------------------------------------------------------------------


def _percent(value: object) -> str:
    try:
        return f"{float(str(value)) * 100:.2f}%"
    except ValueError:
        return str(value)


class _Names:
    """Entity names for alert text; person ids masked (alerts are read by every regulator)."""

    def __init__(self, names: Mapping[str, str], kinds: Mapping[str, str] | None = None) -> None:
        self.names = names
        self.mask = penetration.IdentifierMask(reveal=False, kinds=kinds)

    def zh(self, entity: object) -> str:
        text = self.mask(str(entity))
        name = self.names.get(str(entity))
        return f"{name}（{text}）" if name else text

    def en(self, entity: object) -> str:
        text = self.mask(str(entity))
        name = self.names.get(str(entity))
        return f"{name} ({text})" if name else text


def alert_text(finding: Finding, names: Mapping[str, str], kinds: Mapping[str, str] | None = None
               ) -> tuple[str, str, str, str]:
    """(title_zh, title_en, detail_zh, detail_en) of a finding, zh-hans first; `kinds` (of the
    registered entities) lets persons without a PRC ID number be masked too."""
    n = _Names(names, kinds)
    f: dict[str, Any] = dict(finding.facts)
    at_zh = f"（{finding.chain} #{finding.height}）" if finding.chain else ""
    at_en = f" ({finding.chain} #{finding.height})" if finding.chain else ""
    code = finding.code
    if code == "circular_holding":
        cycle = [str(x) for x in f.get("cycle") or finding.entities]
        ring_zh = " → ".join(n.zh(x) for x in [*cycle, cycle[0]])
        ring_en = " → ".join(n.en(x) for x in [*cycle, cycle[0]])
        nxt = [*cycle[1:], cycle[0]]
        fractions = list(f.get("fractions") or [])
        links = list(zip(cycle, nxt, fractions, strict=False))
        steps_zh = "；".join(f"{n.zh(a)} 持有 {n.zh(b)} {_percent(x)}" for a, b, x in links)
        steps_en = "; ".join(f"{n.en(a)} holds {_percent(x)} of {n.en(b)}" for a, b, x in links)
        if f.get("closed"):
            steps_zh = "相互全资持有，不存在穿透持股比例"
            steps_en = "held entirely by each other: no integrated ownership exists"
        members = f.get("members", len(cycle))
        return (f"循环持股：{' → '.join(n.zh(x) for x in cycle)}{at_zh}",
                f"Circular holding: {' → '.join(n.en(x) for x in cycle)}{at_en}",
                f"组织之间形成交叉/循环持股：{ring_zh}。{steps_zh}。所在持股环共 {members} 家组织。",
                f"Organisations hold each other in a cycle: {ring_en}. {steps_en}. "
                f"{members} organisations are in the holding cycle.")
    if code in ("wash_trade", "related_party_trade"):
        buyer, seller = f.get("buyer") or "", f.get("seller") or ""
        ba, sa = f.get("buyer_account", ""), f.get("seller_account", "")
        trade_zh = f"证券 {f.get('security', '')} 成交 {f.get('quantity', '')} 股，价格 {f.get('price', '')}"
        trade_en = f"{f.get('quantity', '')} shares of {f.get('security', '')} at {f.get('price', '')}"
        if code == "wash_trade":
            group = f.get("group") or buyer
            return (f"对倒交易：账户 {sa} 与 {ba} 同属控制组 {n.zh(group)}",
                    f"Wash trade: accounts {sa} and {ba} are in control group {n.en(group)}",
                    f"{trade_zh}；卖方账户 {sa}（{n.zh(seller)}）与买方账户 {ba}（{n.zh(buyer)}）同属控制组 "
                    f"{n.zh(group)}{at_zh}。",
                    f"{trade_en}: seller account {sa} ({n.en(seller)}) and buyer account {ba} "
                    f"({n.en(buyer)}) are in control group {n.en(group)}{at_en}.")
        reasons = "; ".join(n.mask.text(str(r)) for r in f.get("reasons") or ())  # "shared_person:<id>"
        return (f"关联方交易：{n.zh(seller)} 与 {n.zh(buyer)} 为关联方",
                f"Related-party trade: {n.en(seller)} and {n.en(buyer)} are related parties",
                f"{trade_zh}；卖方 {n.zh(seller)}（账户 {sa}）与买方 {n.zh(buyer)}（账户 {ba}）为关联方，"
                f"但不属同一控制组（{reasons}）{at_zh}。",
                f"{trade_en}: seller {n.en(seller)} (account {sa}) and buyer {n.en(buyer)} (account {ba}) "
                f"are related parties outside one control group ({reasons}){at_en}.")
    if code == "trade_ring":
        accounts = [str(x) for x in f.get("accounts") or ()]
        path = " → ".join([*accounts, accounts[0]]) if accounts else ""
        minutes = round(float(f.get("seconds", 0)) / 60, 1)
        quantities = "/".join(str(q) for q in f.get("quantities") or ())
        return (f"环形交易：证券 {f.get('security', '')} 经 {len(accounts)} 个账户回到起点",
                f"Trade ring: {f.get('security', '')} passed through {len(accounts)} accounts back to "
                f"the first",
                f"证券 {f.get('security', '')} 在 {minutes} 分钟内依次经过 {path}，各笔数量（{quantities}）"
                f"与首笔相差不超过 10%{at_zh}。",
                f"{f.get('security', '')} moved {path} within {minutes} minutes, each leg's quantity "
                f"({quantities}) within 10% of the first{at_en}.")
    if code == "threshold_crossing":
        group, issuer = f.get("group", ""), f.get("issuer", "")
        up = f.get("direction") == "up"
        crossed = "升破" if up else "跌破"
        return (f"持股{crossed} {f.get('percent')}% 未披露：控制组 {n.zh(group)} / {n.zh(issuer)}",
                f"Undisclosed crossing of {f.get('percent')}%: control group {n.en(group)} in {n.en(issuer)}",
                f"控制组 {n.zh(group)} 在全部链、全部账户合计持有 {n.zh(issuer)} 的股份由 "
                f"{f.get('before')} 股{'增至' if up else '减至'} {f.get('after')} 股（总股本 "
                f"{f.get('total_shares')}），{crossed} {f.get('percent')}%；截至 {f.get('due_at')} "
                f"未见组内成员提交权益变动披露（shareholding_change）{at_zh}。",
                f"Control group {n.en(group)}'s holding of {n.en(issuer)} over all its accounts on all "
                f"chains went {'up' if up else 'down'} from {f.get('before')} to {f.get('after')} shares "
                f"(of {f.get('total_shares')}), crossing {f.get('percent')}%; no shareholding_change "
                f"disclosure by a group member was filed by {f.get('due_at')}{at_en}.")
    if code == "broker_stake_limit":
        group = f.get("group", "")
        stakes: Mapping[str, Any] = f.get("stakes") or {}
        controlled = [str(x) for x in f.get("controlled") or ()]
        held_zh = "、".join(f"{n.zh(b)} {_percent(x)}" for b, x in stakes.items())
        held_en = ", ".join(f"{n.en(b)} {_percent(x)}" for b, x in stakes.items())
        return (f"证券公司股权超限：控制组 {n.zh(group)}",
                f"Securities-firm stake limit: control group {n.en(group)}",
                f"控制组 {n.zh(group)} 持有 5% 以上股权的证券公司 {len(stakes)} 家（{held_zh or '无'}），"
                f"控制 {len(controlled)} 家（{'、'.join(n.zh(x) for x in controlled) or '无'}）；"
                f"《证券公司股权管理规定》规定参股不超过两家、控股不超过一家{at_zh}。",
                f"Control group {n.en(group)} holds at least 5% of {len(stakes)} securities firms "
                f"({held_en or 'none'}) and controls {len(controlled)} "
                f"({', '.join(n.en(x) for x in controlled) or 'none'}); the rules allow stakes in at most "
                f"two and control of at most one{at_en}.")
    who_zh = "、".join(n.zh(e) for e in finding.entities)
    who_en = ", ".join(n.en(e) for e in finding.entities)
    return f"{code}{at_zh}", f"{code}{at_en}", f"涉及：{who_zh}", f"Involves: {who_en}"


# --- recompute --------------------------------------------------------------------------------


def analytics_recompute(*, progress: Progress | None = None, now: datetime | None = None) -> RecomputeReport:
    """Rebuild everything from the stored index: the structure and control groups, the structure
    rules over the whole graph, then every block in time order (trade rules and threshold crossings,
    positions replayed from zero) and finally the crossings due by `now` (default: the wall clock).
    Alerts that already exist are left as they are (no repeats, no duplicates); threshold
    crossings are derived again."""
    started = time.monotonic()
    report = RecomputeReport()
    structure = structure_refresh(fresh=True)
    report.entities_in_groups = ControlGroupMember.objects.count()
    with transaction.atomic():
        findings = _structure_findings(structure, None)
        report.alerts_created += _raise(findings, skip_existing=True).created
        _count(report.findings, findings)
        ThresholdCrossing.objects.all().delete()
    blocks = list(Block.objects.order_by("timestamp", "chain_id", "height").values_list("chain_id", "height"))
    report.blocks = total = len(blocks)
    replay = _ReplayPositions()
    if progress:
        progress(0, total)
    for done, (chain_id, height) in enumerate(blocks, start=1):
        with transaction.atomic():
            data = _block_data(chain_id, height)
            data.structure = structure
            replay.apply(data.legs)
            findings = _trade_findings(data) if data.trades or data.transfers else []
            if data.trades or data.transfers:
                report.crossings += _crossings_open(data, replay)
            if data.disclosures:
                _crossings_disclose(data.disclosures)
            report.alerts_created += _raise(findings, skip_existing=True).created
            _count(report.findings, findings)
        if progress:
            progress(done, total)
    clock = max(c for c in (now or timezone.now(), _chains_clock()) if c is not None)
    while True:
        with transaction.atomic():
            settled = _crossings_settle(clock, skip_existing=True)
        report.crossings_alerted += settled.alerted
        report.alerts_created += settled.created
        _count(report.findings, settled.findings)
        if not settled.more:
            break
    AnalyticsState.objects.filter(pk=1).update(recomputed_at=timezone.now())
    report.seconds = time.monotonic() - started
    return report
