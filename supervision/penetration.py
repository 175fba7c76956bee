"""Penetrating supervision (穿透式监管, supervision API §1), read side: the ownership structure loaded
from the typed index into the pure analytics, and the entity views the API serves.

The whole-graph structure (graph, integrated matrix, control groups) is derived data. A process keeps
its last copy with the chains' head heights it was read at, and checks them on every use (one
query): unchanged heads mean an unchanged index; moved heads mean reading only the index rows
written since (they carry the writing block's chain and height), and rebuilding only if there are
any. Correctness never depends on the copy.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any

import numpy as np
import scipy.sparse as sp
from django.db import connection
from django.db.models import CharField, Lookup, Q, QuerySet

from businesschain.errors import InvalidInput, NotFound
from businesschain.models import (
    Account,
    Block,
    Chain,
    ConcertParty,
    Entity,
    EntityRegistration,
    Holding,
    Role,
    Security,
    Transaction,
)
from businesschain.protocol.identifiers import entity_id_type, is_prc_id, mask_prc_id
from supervision.analytics import ownership as own
from supervision.analytics import trading
from supervision.models import ControlGroupMember

log = logging.getLogger(__name__)

#: Transaction types that change the ownership structure (graph, kinds, roles, groups, brokers) or
#: the inputs the per-block rules take from it (accounts' holders, listings).
STRUCTURE_TX_TYPES = frozenset({"shareholding", "role", "concert_party", "account_open", "entity_register",
                                "security_listing"})
PERSON_IDS_PERMISSION = "supervision.view_person_identifiers"
SHARE_PLACES = Decimal("0.000001")
GRAPH_DEPTH_RANGE = (1, 6)
GRAPH_MAX_NODES = 300
PATHS_PER_OWNER = 5
_CLOSED_LOOP_RETRIES = 20


# --- a set-membership lookup that scales -------------------------------------------------------


@CharField.register_lookup
class AnyOf(Lookup):  # type: ignore[type-arg]
    """`field__any_of=values`: `field = ANY(%s)` with one array parameter on PostgreSQL (an IN list
    of thousands of placeholders costs more to build and parse than the query takes to run), a
    plain IN list elsewhere."""

    lookup_name = "any_of"
    prepare_rhs = False

    def as_sql(self, compiler: Any, connection: Any) -> Any:
        lhs, lhs_params = self.process_lhs(compiler, connection)
        values = [str(v) for v in self.rhs]
        if connection.vendor == "postgresql":
            return f"{lhs} = ANY(%s::varchar[])", [*lhs_params, pg_text_array(values)]
        if not values:
            return "1 = 0", list(lhs_params)
        return f"{lhs} IN ({', '.join(['%s'] * len(values))})", [*lhs_params, *values]


_PLAIN_LIST = re.compile(r"[A-Za-z0-9:._-]+(?:,[A-Za-z0-9:._-]+)*")


def pg_text_array(values: Sequence[str]) -> str | list[str]:
    """An array parameter for `= ANY(%s::varchar[])`: identifiers (accounts, securities, entity ids)
    need no quoting inside a PostgreSQL array literal, so they go as one `{a,b,…}` string, which
    the driver passes in microseconds; anything else goes as a list for the driver to quote."""
    joined = ",".join(values)
    if joined and _PLAIN_LIST.fullmatch(joined) and "NULL" not in joined.upper():
        return "{" + joined + "}"
    return list(values)


# --- the structure ----------------------------------------------------------------------------

Heads = tuple[tuple[str, int], ...]  # (chain, head height) for every chain, sorted
BrokerStakes = tuple[dict[str, dict[str, float]], dict[str, set[str]]]  # (group stakes, control)
Pair = tuple[str, str]  # (holder, issuer)
MAX_DELTA_BLOCKS = 200  # beyond this many new blocks, changed rows are found by scanning the tables
MAX_PENDING_CHANGES = 2000  # holding changes carried before the groups are computed again


@dataclass(slots=True)
class StructureInputs:
    """The index rows the structure is built from, as of `heads`: every chain's head height, read
    before the rows. Index rows carry the (chain, height) of the block that last wrote them and are
    never deleted, and only structure transactions write them, so a cached copy is brought up to
    date exactly by re-reading the rows those transactions name in the blocks above the recorded
    heads (`inputs_refresh`)."""

    heads: Heads
    holdings: dict[Pair, tuple[int, int]]  # (holder, issuer) → (shares, total_shares)
    kinds: dict[str, str]
    roles: dict[tuple[str, str, str], bool]  # (org, person, role) → active
    concerts: dict[tuple[str, str], tuple[tuple[str, ...], bool]]  # (issuer, key) → (parties, active)
    brokers: dict[tuple[str, str], str]  # (chain, account) → broker
    # Accounts by holder and listings by issuer, for the per-block rules (no effect on the
    # structure itself):
    holders: dict[tuple[str, str], str] = field(default_factory=dict)  # (chain, account) → holder
    accounts_of: dict[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)  # holder → accounts
    listings: dict[str, tuple[str, int]] = field(default_factory=dict)  # security → (issuer, total shares)
    listings_of: dict[str, frozenset[str]] = field(default_factory=dict)  # issuer → its securities
    _holders_by_chain: dict[str, dict[str, str]] = field(default_factory=dict)  # `holders_on`, filled lazily

    def copy(self, heads: Heads, rows: _Rows) -> StructureInputs:
        """Ours at `heads`, ready for `rows` to be applied: the tables `rows` may write are copied,
        the others shared (inputs are never changed once a structure is made from them, and
        copying every account's holder for each block costs more than the block's own rows)."""
        accounts = bool(rows.accounts)
        return StructureInputs(
            heads, dict(self.holdings) if rows.holdings else self.holdings,
            dict(self.kinds) if rows.kinds else self.kinds, dict(self.roles) if rows.roles else self.roles,
            dict(self.concerts) if rows.concerts else self.concerts,
            dict(self.brokers) if accounts else self.brokers,
            dict(self.holders) if accounts else self.holders,
            dict(self.accounts_of) if accounts else self.accounts_of,
            dict(self.listings) if rows.listings else self.listings,
            dict(self.listings_of) if rows.listings else self.listings_of,
            {} if accounts else self._holders_by_chain)

    def holders_on(self, chain: str) -> dict[str, str]:
        """`holders` of one chain's accounts, by account (built once per holders table: the
        per-block rules look thousands of accounts up)."""
        found = self._holders_by_chain.get(chain)
        if found is None:
            found = self._holders_by_chain[chain] = {a: h for (c, a), h in self.holders.items() if c == chain}
        return found

    def kind_of(self, entity: str) -> str:
        return self.kinds.get(entity) or kinds_by_form([entity])[entity]


@dataclass(slots=True)
class InputsDelta:
    """What changed between two `StructureInputs`: holdings one by one, the rest as a flag."""

    holdings: dict[Pair, tuple[tuple[int, int] | None, tuple[int, int]]] = field(default_factory=dict)
    other: bool = False
    kinds: set[str] = field(default_factory=set)  # entities whose registered kind changed

    def __bool__(self) -> bool:
        return bool(self.holdings) or self.other


def _fraction(value: tuple[int, int] | None) -> float:
    if value is None:
        return 0.0
    shares, total = value
    return shares / total if 0 < shares <= total else 0.0


class OwnershipStructure:
    """Everything the whole-graph rules and the entity views need, derived from `StructureInputs`.
    The graph, its integrated matrix and the control groups are computed on first use; control
    groups carry a token that names the computation they came from (kept when a change is proven
    not to affect them), so the materialised table is rewritten only when they may differ."""

    def __init__(self, inputs: StructureInputs, *, groups: own.ControlGroups | None = None,
                 groups_token: str | None = None, dropped_loops: list[tuple[str, ...]] | None = None,
                 graph: own.OwnershipGraph | None = None, same_parties_as: OwnershipStructure | None = None,
                 ) -> None:
        self.inputs = inputs
        self.roles: own.RoleIndex
        self.concert_parties: list[own.ConcertParty]
        self.brokers: frozenset[str]
        if same_parties_as is not None:  # roles, concert parties and accounts did not change
            self.roles = same_parties_as.roles
            self.concert_parties = same_parties_as.concert_parties
            self.brokers = same_parties_as.brokers
        else:
            self.roles = own.RoleIndex(own.Role(o, p, r, True) for (o, p, r), a in inputs.roles.items() if a)
            self.concert_parties = [own.ConcertParty(issuer, members, True)
                                    for (issuer, _), (members, active) in sorted(inputs.concerts.items())
                                    if active and len(members) >= 2]
            self.brokers = frozenset(inputs.brokers.values())
        self._graph = graph
        self._dropped = dropped_loops
        self._matrix: sp.spmatrix | None = None
        self._rows: sp.csr_matrix | None = None  # the matrix by rows, for `_control_unmoved`
        self._held: np.ndarray | None = None  # per entity, the fraction of it held (W's column sums)
        self._groups = groups
        self.groups_token = groups_token or uuid.uuid4().hex
        self._broker_stakes: BrokerStakes | None = None
        self.base: OwnershipStructure | None = None  # the settled structure whose groups we share
        self.pending: dict[Pair, tuple[tuple[int, int] | None, tuple[int, int]]] = {}  # changes since

    @property
    def heads(self) -> Heads:
        return self.inputs.heads

    def broker_stakes(self) -> BrokerStakes:
        """Every control group's stakes in and control of securities firms (`trading.broker_stakes`),
        from the holdings whose issuer is a firm alone (a small graph). Kept by an evolved
        structure whose groups and firms' holdings did not change."""
        if self._broker_stakes is None:
            brokers = self.brokers
            stakes_graph = own.OwnershipGraph.build(
                [own.Holding(h, i, s, t) for (h, i), (s, t) in self.inputs.holdings.items()
                 if i in brokers and 0 < s <= t],
                {}, oversubscribed="scale")
            self._broker_stakes = trading.broker_stakes(stakes_graph, self.groups, brokers)
        return self._broker_stakes

    @property
    def computed_groups(self) -> own.ControlGroups | None:
        """The control groups when already computed (or carried from the base), else None:
        computing them takes the integrated matrix."""
        return self._groups

    def _build_graph(self) -> None:
        holdings = [own.Holding(h, i, s, t) for (h, i), (s, t) in self.inputs.holdings.items() if 0 < s <= t]
        skipped = sum(1 for s, t in self.inputs.holdings.values() if s > 0 and not s <= t)
        if skipped:
            log.warning("skipped %d holdings with shares outside 0..total_shares", skipped)
        self._graph, self._dropped = _graph(holdings, self.inputs.kinds)

    @property
    def graph(self) -> own.OwnershipGraph:
        """Bad data never stops analytics: an issuer held over 100 % is scaled to 100 %; snapshots
        out of range are skipped; a closed loop (organisations held entirely by each other, with no
        integrated ownership) loses its internal edges and is listed in `dropped_loops`."""
        if self._graph is None:
            self._build_graph()
        assert self._graph is not None
        return self._graph

    @property
    def dropped_loops(self) -> list[tuple[str, ...]]:
        if self._dropped is None:
            self._build_graph()
        return self._dropped or []

    @property
    def matrix(self) -> sp.spmatrix:
        if self._matrix is None:
            self._matrix = own.integrated_matrix(self.graph)
        return self._matrix

    @property
    def groups(self) -> own.ControlGroups:
        if self._groups is None:
            self._groups = own.control_groups(self.graph, self.roles, self.concert_parties,
                                              matrix=self.matrix)
        return self._groups

    @property
    def settled(self) -> bool:
        """Graph, matrix and groups computed from these very inputs: a base to evolve from."""
        return self.base is None and None not in (self._graph, self._matrix, self._groups)

    def related(self) -> own.RelatedParties:
        return own.RelatedParties(self.graph, self.groups, self.roles)

    def evolve(self, inputs: StructureInputs, delta: InputsDelta) -> OwnershipStructure:
        """The structure for `inputs`, which differ from ours by `delta`. When the changes since
        the last settled structure (the base) cannot move control — only natural persons' stakes
        changed, and no integrated ownership gets near 50 % — the base's control groups are kept,
        token included, and the graph is rebuilt only when first used."""
        if not delta:
            evolved = OwnershipStructure(inputs, groups=self._groups, groups_token=self.groups_token,
                                         dropped_loops=self._dropped, graph=self._graph, same_parties_as=self)
            evolved._matrix, evolved._rows, evolved._held = self._matrix, self._rows, self._held
            evolved.base, evolved.pending = self.base, self.pending
            evolved._broker_stakes = self._broker_stakes
            return evolved
        base = self.base or self
        if delta.other:
            if not delta.holdings and self._graph is not None and \
                    not self._graph_kinds_change(inputs, delta.kinds):
                return self._regrouped(inputs)
            return OwnershipStructure(inputs)
        if not base.settled:
            return OwnershipStructure(inputs, same_parties_as=self)
        pending = dict(self.pending)
        for pair, (before, after) in delta.holdings.items():
            origin = pending[pair][0] if pair in pending else before
            if origin == after:
                pending.pop(pair, None)
            else:
                pending[pair] = (origin, after)
        if len(pending) > MAX_PENDING_CHANGES or not base._control_unmoved(pending):
            return OwnershipStructure(inputs, same_parties_as=self)
        evolved = OwnershipStructure(inputs, groups=base._groups, groups_token=base.groups_token,
                                     dropped_loops=base._dropped, same_parties_as=self)
        evolved.base, evolved.pending = base, pending
        # No firm's holdings changed (`_control_unmoved` refuses those), and the groups are ours.
        evolved._broker_stakes = self._broker_stakes
        return evolved

    def _graph_kinds_change(self, inputs: StructureInputs, entities: Iterable[str]) -> bool:
        """Whether a node of our graph gets another kind from these registrations."""
        graph = self.graph
        for entity in entities:
            i = graph.index.get(entity)
            if i is not None and own.KIND_CODES.get(inputs.kinds[entity]) != graph.kinds[i]:
                return True
        return False

    def _regrouped(self, inputs: StructureInputs) -> OwnershipStructure:
        """For a change of roles, concert parties, brokers or kinds outside the graph: the holdings
        and so the graph and its integrated matrix are ours (computed from our inputs); only the
        control groups are computed again."""
        regrouped = OwnershipStructure(inputs, dropped_loops=self._dropped, graph=self._graph)
        regrouped._matrix, regrouped._rows, regrouped._held = self._matrix, self._rows, self._held
        return regrouped

    def _control_unmoved(self, changes: Mapping[Pair, tuple[tuple[int, int] | None, tuple[int, int]]]
                         ) -> bool:
        """True when these holding changes (against our inputs) provably leave every control
        relation as it is: each is held by a non-organisation (the org-to-org part N of the matrix
        stays), and each holder's integrated ownership, old and new (old row + Σ Δf·(e_i + N[i,:]),
        exact), stays below 50 % wherever it changes. Stakes in securities firms and issuers held
        over 100 % are left to a full rebuild."""
        graph = self.graph
        if self._rows is None:
            self._rows = self.matrix.tocsr()
            self._rows.sort_indices()
        if self._held is None:
            self._held = np.bincount(graph.W.indices, weights=graph.W.data, minlength=graph.n)
        M = self._rows
        scaled = set(graph.scaled_issuers)
        change: dict[str, dict[int, float]] = defaultdict(lambda: defaultdict(float))
        column_step: dict[int, float] = defaultdict(float)
        for (holder, issuer), (before, after) in changes.items():
            if self.inputs.kind_of(holder) == "org" or issuer in self.brokers or issuer in scaled:
                return False
            i = graph.index.get(holder)
            if i is not None and graph.kinds[i] == own.ORG:
                return False
            j = graph.index.get(issuer)
            if j is None or graph.kinds[j] != own.ORG:
                return False
            step = _fraction(after) - _fraction(before)
            column_step[j] += step
            acc = change[holder]
            acc[j] += step
            lo, hi = M.indptr[j], M.indptr[j + 1]
            for k, v in zip(M.indices[lo:hi].tolist(), M.data[lo:hi].tolist(), strict=True):
                acc[k] += step * v
        held = self._held
        if any(float(held[j]) + step > 1 + 1e-9 for j, step in column_step.items()):
            return False
        limit = own.MAJORITY - 1e-6
        for holder, acc in change.items():
            i = graph.index.get(holder)
            row = _row(M, i) if i is not None else {}
            for k, step in acc.items():
                was = row.get(k, 0.0)
                if max(was, was + step) >= limit:
                    return False
        return True


def _row(m: sp.csr_matrix, i: int) -> dict[int, float]:
    """Row `i` of a CSR matrix as {column: value}: one slice, then plain lookups (a numpy search
    per entry costs microseconds each)."""
    lo, hi = m.indptr[i], m.indptr[i + 1]
    return dict(zip(m.indices[lo:hi].tolist(), m.data[lo:hi].tolist(), strict=True))


_cache_lock = threading.Lock()
_cache: dict[str, OwnershipStructure] = {}


def chain_heads() -> Heads:
    """Every chain's head height, sorted by chain (raw: it is read once per analysed block)."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT id, head_height FROM {connection.ops.quote_name(Chain._meta.db_table)}")  # noqa: S608
        return tuple(sorted(cursor.fetchall()))


#: (chain, height) → the structure transactions (type, body) of that block, already read
KnownBlocks = Mapping[tuple[str, int], Sequence[tuple[str, Mapping[str, Any]]]]


def ownership_structure(*, known: KnownBlocks | None = None) -> OwnershipStructure:
    """The current structure. The per-process copy is only a shortcut: one query compares the
    chains' heads with the copy's; if any moved, the rows written since are read (`inputs_refresh`)
    and the structure is evolved from them. `known`: blocks whose structure transactions the
    caller has read already (not read again)."""
    heads = chain_heads()
    with _cache_lock:
        cached = _cache.get(connection.alias)
    if cached is not None and cached.heads == heads:
        return cached
    if cached is None:
        structure = OwnershipStructure(inputs_load(heads))
    else:
        inputs, delta = inputs_refresh(cached.inputs, heads, known=known)
        structure = cached.evolve(inputs, delta)
    remember_structure(structure)
    return structure


def cached_structure() -> OwnershipStructure | None:
    """The structure this process last read (without asking whether the index moved since)."""
    with _cache_lock:
        return _cache.get(connection.alias)


def remember_structure(structure: OwnershipStructure) -> None:
    with _cache_lock:
        _cache[connection.alias] = structure


def clear_structure_cache() -> None:
    with _cache_lock:
        _cache.clear()


def build_structure() -> OwnershipStructure:
    """A structure read wholly from the index, without the cache (and then cached)."""
    structure = OwnershipStructure(inputs_load(chain_heads()))
    remember_structure(structure)
    return structure


def inputs_load(heads: Heads) -> StructureInputs:
    """Every structure row (`heads` read before)."""
    inputs = StructureInputs(heads, {}, {}, {}, {}, {})
    _inputs_apply(inputs, _rows(Q()), InputsDelta())
    return inputs


def inputs_refresh(old: StructureInputs, heads: Heads, *, known: KnownBlocks | None = None
                   ) -> tuple[StructureInputs, InputsDelta]:
    """`old` brought up to `heads` (read before this call), and what changed (`known`: see
    `ownership_structure`)."""
    delta = InputsDelta()
    was_at = dict(old.heads)
    moved = [(chain, was_at.get(chain, -1), height) for chain, height in heads
             if height > was_at.get(chain, -1)]
    if not moved:
        return old.copy(heads, _Rows()), delta
    if sum(new - was for _, was, new in moved) > MAX_DELTA_BLOCKS:
        since = Q()
        for chain, was, _ in moved:
            since |= Q(chain_id=chain, height__gt=was)
        rows = _rows(since).listed()
    else:
        rows = _rows_named(moved, known or {})
    inputs = old.copy(heads, rows)
    _inputs_apply(inputs, rows, delta)
    return inputs, delta


@dataclass(slots=True)
class _Rows:
    holdings: Iterable[tuple[str, str, int, int]] = ()
    kinds: Iterable[tuple[str, str]] = ()
    roles: Iterable[tuple[str, str, str, bool]] = ()
    concerts: Iterable[tuple[str, str, Any, bool]] = ()
    accounts: Iterable[tuple[str, str, str, str]] = ()  # (chain, account, broker, holder)
    listings: Iterable[tuple[str, str, int]] = ()  # (security, issuer, total shares)

    def listed(self) -> _Rows:
        """The same rows read into lists (so that their emptiness is known)."""
        return _Rows(list(self.holdings), list(self.kinds), list(self.roles), list(self.concerts),
                     list(self.accounts), list(self.listings))


def _rows(where: Q) -> _Rows:
    return _Rows(
        Holding.objects.order_by().filter(where).values_list(
            "holder_id", "issuer_id", "shares", "total_shares"),
        Entity.objects.order_by().filter(where).values_list("id", "kind"),
        Role.objects.order_by().filter(where).values_list("org_id", "person_id", "role", "active"),
        ConcertParty.objects.order_by().filter(where).values_list(
            "issuer_id", "parties_key", "parties", "active"),
        Account.objects.order_by().filter(where).values_list("chain_id", "account", "broker_id", "holder_id"),
        Security.objects.order_by().filter(where).values_list("code", "issuer_id", "total_shares"),
    )


def _rows_named(moved: Sequence[tuple[str, int, int]], known: KnownBlocks) -> _Rows:
    """The current rows named by the structure transactions of the blocks in `moved` (chain, from
    height exclusive, to height inclusive; those of the blocks in `known` as given): at most eight
    small indexed reads."""
    named: list[tuple[str, str, Mapping[str, Any]]] = []  # (chain, type, body)
    in_blocks = Q()
    for chain, was, now in moved:
        if all((chain, height) in known for height in range(was + 1, now + 1)):
            named += [(chain, kind, body) for height in range(was + 1, now + 1)
                      for kind, body in known[(chain, height)]]
        else:
            in_blocks |= Q(chain_id=chain, height__gt=was, height__lte=now)
    if in_blocks:
        block_ids = list(Block.objects.order_by().filter(in_blocks).values_list("id", flat=True))
        stored = Transaction.objects.order_by().filter(block_id__in=block_ids, type__in=STRUCTURE_TX_TYPES)
        named += [(chain, kind, json.loads(body))
                  for chain, kind, body in stored.values_list("chain_id", "type", "body")]
    pairs: set[Pair] = set()
    entities: set[str] = set()
    role_keys: set[tuple[str, str]] = set()
    issuers: set[str] = set()
    accounts: dict[str, set[str]] = defaultdict(set)
    securities: set[str] = set()
    for chain, kind, data in named:
        if kind == "shareholding":
            pairs.add((data["holder"], data["issuer"]))
        elif kind == "entity_register":
            entities.add(data["id"])
        elif kind == "role":
            role_keys.add((data["org"], data["person"]))
        elif kind == "concert_party":
            issuers.add(data["issuer"])
        elif kind == "account_open":
            accounts[chain].add(data["account"])
        elif kind == "security_listing":
            securities.add(data["security"])
    rows = _Rows()
    if pairs:
        rows.holdings = _holding_rows(pairs)
    if entities:
        rows.kinds = Entity.objects.order_by().filter(id__any_of=entities).values_list("id", "kind")
    if role_keys:
        rows.roles = [r for r in Role.objects.order_by().filter(
            org_id__any_of={o for o, _ in role_keys}, person_id__any_of={p for _, p in role_keys},
        ).values_list("org_id", "person_id", "role", "active") if (r[0], r[1]) in role_keys]
    if issuers:
        rows.concerts = ConcertParty.objects.order_by().filter(issuer_id__any_of=issuers).values_list(
            "issuer_id", "parties_key", "parties", "active")
    if accounts:
        where = Q()
        for chain, names in accounts.items():
            where |= Q(chain_id=chain, account__any_of=names)
        rows.accounts = Account.objects.order_by().filter(where).values_list(
            "chain_id", "account", "broker_id", "holder_id")
    if securities:
        rows.listings = Security.objects.order_by().filter(code__any_of=securities).values_list(
            "code", "issuer_id", "total_shares")
    return rows


def _holding_rows(pairs: set[Pair]) -> list[tuple[str, str, int, int]]:
    """The holdings of these (holder, issuer) pairs: on PostgreSQL one probe of the unique index
    per pair, elsewhere a superset filtered here."""
    if connection.vendor == "postgresql":
        holders, issuers = zip(*pairs, strict=True)
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT h.holder_id, h.issuer_id, h.shares, h.total_shares "  # noqa: S608
                "FROM unnest(%s::varchar[], %s::varchar[]) AS k(holder_id, issuer_id) "
                f"JOIN {connection.ops.quote_name(Holding._meta.db_table)} h "
                "ON h.holder_id = k.holder_id AND h.issuer_id = k.issuer_id",
                [pg_text_array(holders), pg_text_array(issuers)])
            return cursor.fetchall()
    return [r for r in Holding.objects.order_by().filter(
        holder_id__any_of={h for h, _ in pairs}, issuer_id__any_of={i for _, i in pairs},
    ).values_list("holder_id", "issuer_id", "shares", "total_shares") if (r[0], r[1]) in pairs]


def _inputs_apply(inputs: StructureInputs, rows: _Rows, delta: InputsDelta) -> None:
    for holder, issuer, shares, total in rows.holdings:
        before = inputs.holdings.get((holder, issuer))
        if before != (shares, total):
            inputs.holdings[(holder, issuer)] = (shares, total)
            delta.holdings[(holder, issuer)] = (before, (shares, total))
    for entity, kind in rows.kinds:
        if inputs.kinds.get(entity) != kind:
            inputs.kinds[entity] = kind
            delta.kinds.add(entity)
            delta.other = True
    for org, person, role, active in rows.roles:
        if inputs.roles.get((org, person, role)) != active:
            inputs.roles[(org, person, role)] = active
            delta.other = True
    for issuer, key, parties, active in rows.concerts:
        value = (tuple(parties) if isinstance(parties, list) else (), bool(active))
        if inputs.concerts.get((issuer, key)) != value:
            inputs.concerts[(issuer, key)] = value
            delta.other = True
    for chain, account, broker, holder in rows.accounts:
        where = (chain, account)
        if inputs.brokers.get(where) != broker:
            inputs.brokers[where] = broker
            delta.other = True
        was = inputs.holders.get(where)
        if was != holder:  # an account reopened for another holder moves
            inputs.holders[where] = holder
            if was is not None:
                inputs.accounts_of[was] = tuple(k for k in inputs.accounts_of[was] if k != where)
            inputs.accounts_of[holder] = (*inputs.accounts_of.get(holder, ()), where)
    for code, issuer, total in rows.listings:
        listed = inputs.listings.get(code)
        if listed != (issuer, total):  # the latest listing wins: a security may move issuer
            inputs.listings[code] = (issuer, total)
            if listed is not None and listed[0] != issuer:
                inputs.listings_of[listed[0]] -= {code}
            inputs.listings_of[issuer] = inputs.listings_of.get(issuer, frozenset()) | {code}


def _graph(holdings: list[own.Holding], kinds: Mapping[str, str]
           ) -> tuple[own.OwnershipGraph, list[tuple[str, ...]]]:
    dropped: list[tuple[str, ...]] = []
    for _ in range(_CLOSED_LOOP_RETRIES):
        graph = own.OwnershipGraph.build(holdings, _kinds_for(holdings, kinds), oversubscribed="scale")
        try:
            graph.structure  # noqa: B018 - raises on closed loops
            return graph, dropped
        except own.OwnershipDataError as error:
            orgs = set(error.extra.get("orgs") or ())
            if not orgs:
                raise
            log.warning("closed ownership loop among %s: ignoring its internal holdings", sorted(orgs))
            dropped.append(tuple(sorted(orgs)))
            holdings = [h for h in holdings if not (h.holder in orgs and h.issuer in orgs)]
    raise own.OwnershipDataError("too many closed ownership loops", loops=len(dropped))


def _kinds_for(holdings: Iterable[own.Holding], kinds: Mapping[str, str]) -> dict[str, str]:
    """Registered kinds; an unregistered entity is classified by the form of its id."""
    ids = {e for h in holdings for e in (h.holder, h.issuer)}
    by_form = kinds_by_form(e for e in ids if e not in kinds)
    return {e: kinds.get(e) or by_form[e] for e in ids}


def kinds_by_form(ids: Iterable[str]) -> dict[str, str]:
    """"person" for a PRC ID number, "org" for a USCC, else "unknown" (ECP/1 §2)."""
    out: dict[str, str] = {}
    for entity in ids:
        form = entity_id_type(entity)
        out[entity] = "person" if form == "PRC_ID" else "org" if form == "USCC" else "unknown"
    return out


# --- the materialised control groups --------------------------------------------------------


def control_group_rows(structure: OwnershipStructure) -> dict[str, tuple[str, str]]:
    """entity → (group key, ultimate controller or "") for every entity in a group of two or more."""
    groups = structure.groups
    candidates = set(structure.graph.ids) | set(structure.roles.orgs_of) | set(structure.roles.persons_of)
    for cp in structure.concert_parties:
        candidates.update(cp.parties)
    by_group: dict[str, list[str]] = {}
    for entity in candidates:
        by_group.setdefault(groups.group_of(entity), []).append(entity)
    rows: dict[str, tuple[str, str]] = {}
    for group_key, members in by_group.items():
        if len(members) < 2:
            continue
        for entity in members:
            rows[entity] = (group_key, groups.controller_of(entity) or "")
    return rows


def stored_groups(entity_ids: Iterable[str]) -> own.ControlGroups:
    """Control groups of the given entities and of everyone in their groups, from the materialised
    table (one query, two index lookups): what the per-block rules use instead of the whole graph."""
    wanted = set(entity_ids)
    if not wanted:
        return own.ControlGroups([], [], [])
    members = ControlGroupMember.objects.order_by()
    rows = list(members.filter(group_key__in=members.filter(entity_id__any_of=wanted).values("group_key"))
                .values_list("entity_id", "group_key", "controller_id"))
    return own.ControlGroups([r[0] for r in rows], [r[1] for r in rows], [r[2] or None for r in rows])


# --- entity views -----------------------------------------------------------------------------


def can_see_person_ids(user: Any) -> bool:
    """Whether `user` may see person identifiers unmasked (`supervision.view_person_identifiers`)."""
    return bool(user is not None and user.has_perm(PERSON_IDS_PERMISSION))


#: A PRC ID number (GB 11643) inside a longer text, not part of a longer run of letters or digits
#: (a hash, an account number).
_PRC_ID_IN_TEXT = re.compile(r"(?<![0-9A-Za-z])[0-9]{17}[0-9X](?![0-9A-Za-z])")


class IdentifierMask:
    """The one rule for person identifiers, used by the API, the live events and the dashboard:
    viewers allowed to see them (`supervision.view_person_identifiers`) see them as they are,
    everyone else sees `mask_prc_id` of them.

    A person is an entity whose kind is "person" (kinds given by the caller, `know` or `learn`);
    an id of no known kind is a person when it has the form of a PRC ID number (GB 11643).
    """

    def __init__(self, *, reveal: bool, kinds: Mapping[str, str] | None = None) -> None:
        self.reveal = reveal
        self.kinds: dict[str, str] = {}
        self._other_people: set[str] = set()  # persons whose ids are not PRC ID numbers
        self._other_re: re.Pattern[str] | None = None
        self.know(kinds or {})

    @classmethod
    def for_user(cls, user: Any, kinds: Mapping[str, str] | None = None) -> IdentifierMask:
        return cls(reveal=can_see_person_ids(user), kinds=kinds)

    def know(self, kinds: Mapping[str, str]) -> None:
        """Take the kinds of these entities; the first "person" or "org" given for an id stays,
        anything else ("unknown") leaves the id to its form."""
        for entity_id, kind in kinds.items():
            if kind not in (Entity.Kind.PERSON, Entity.Kind.ORG):
                continue
            if self.kinds.setdefault(entity_id, kind) == Entity.Kind.PERSON and not is_prc_id(entity_id):
                self._other_people.add(entity_id)
                self._other_re = None

    def learn(self, ids: Iterable[object]) -> None:
        """Look up the registered kinds of those `ids` whose kind is not known yet (one query;
        none for a viewer who sees every id)."""
        if self.reveal:
            return
        wanted = {i for i in ids if isinstance(i, str) and 0 < len(i) <= 64 and i not in self.kinds}
        if wanted:
            self.know(dict(Entity.objects.order_by().filter(id__any_of=wanted).values_list("id", "kind")))

    def is_person(self, entity_id: str) -> bool:
        kind = self.kinds.get(entity_id)
        if kind in (Entity.Kind.PERSON, Entity.Kind.ORG):
            return kind == Entity.Kind.PERSON
        return is_prc_id(entity_id)

    def __call__(self, entity_id: str) -> str:
        if self.reveal or not self.is_person(entity_id):
            return entity_id
        return mask_prc_id(entity_id)

    def text(self, text: str) -> str:
        """Free text (an alert's title, a note) with the person ids inside it masked: PRC ID
        numbers standing alone, and the other ids of known persons."""
        if self.reveal or not text:
            return text
        masked = _PRC_ID_IN_TEXT.sub(lambda m: self(m.group()), text)
        if self._other_people:
            if self._other_re is None:
                longest_first = sorted(self._other_people, key=len, reverse=True)
                alternatives = "|".join(re.escape(i) for i in longest_first)
                self._other_re = re.compile(rf"(?<![0-9A-Za-z-])(?:{alternatives})(?![0-9A-Za-z-])")
            masked = self._other_re.sub(lambda m: mask_prc_id(m.group()), masked)
        return masked

    def json(self, value: Any) -> Any:
        """A copy of a JSON value with person ids masked wherever they appear: strings that are
        ids, ids inside strings (`text`), and keys."""
        if self.reveal:
            return value
        if isinstance(value, str):
            return mask_prc_id(value) if self.is_person(value) else self.text(value)
        if isinstance(value, dict):
            return {self.json(k) if isinstance(k, str) else k: self.json(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.json(v) for v in value]
        return value


def json_strings(value: Any) -> Iterable[str]:
    """Every string anywhere in a JSON value, keys included (what `IdentifierMask.learn` takes)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str):
                yield key
            yield from json_strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from json_strings(item)


def share_text(value: float | Decimal) -> str:
    """A share as a decimal with exactly 6 places, rounded half-even (supervision API §1)."""
    return str(Decimal(repr(float(value))).quantize(SHARE_PLACES, rounding=ROUND_HALF_EVEN))


def parse_threshold(text: str | None) -> Decimal:
    """`threshold` query parameter: a decimal in (0, 1], default 0.25."""
    if text is None or text == "":
        return Decimal("0.25")
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        value = Decimal("NaN")
    if not value.is_finite() or not (0 < value <= 1):
        raise InvalidInput("threshold: must be a decimal greater than 0 and at most 1.",
                           code="invalid_parameter", parameter="threshold")
    return value


def parse_depth(text: str | None) -> int:
    lo, hi = GRAPH_DEPTH_RANGE
    if text is None or text == "":
        return 3
    try:
        depth = int(text)
    except ValueError:
        depth = 0
    if not lo <= depth <= hi:
        raise InvalidInput(f"depth: must be an integer from {lo} to {hi}.",
                           code="invalid_parameter", parameter="depth")
    return depth


@dataclass(frozen=True, slots=True)
class _Known:
    id: str
    kind: str
    name: str


def _entity(entity_id: str, structure: OwnershipStructure | None = None) -> _Known:
    row = Entity.objects.order_by().filter(id=entity_id).values_list("id", "kind", "name").first()
    if row is not None:
        return _Known(*row)
    if structure is not None and entity_id in structure.graph:
        return _Known(entity_id, structure.graph.kind_of(entity_id), "")
    raise NotFound(f"No entity {entity_id!r} is known.", code="unknown_entity", entity=entity_id)


def _names(ids: Iterable[str]) -> dict[str, tuple[str, str]]:
    wanted = set(ids)
    if not wanted:
        return {}
    rows = Entity.objects.order_by().filter(id__any_of=wanted).values_list("id", "kind", "name")
    return {i: (k, n) for i, k, n in rows}


def _owners(structure: OwnershipStructure, org: str, threshold: float, *, with_paths: bool,
            mask: IdentifierMask) -> list[dict[str, Any]]:
    owners = own.beneficial_owners(structure.graph, org, structure.roles, threshold=threshold)
    names = _names(o.id for o in owners)
    out: list[dict[str, Any]] = []
    for owner in owners:
        kind, name = names.get(owner.id, (structure.graph.kind_of(owner.id), ""))
        mask.know({owner.id: kind})
        item: dict[str, Any] = {
            "id": mask(owner.id), "name": name, "kind": kind,
            "share": share_text(owner.share), "direct": share_text(owner.direct),
            "reasons": list(owner.reasons),
        }
        if with_paths:
            item["paths"] = [
                {"nodes": [mask(n) for n in p.nodes], "fractions": [share_text(f) for f in p.fractions],
                 "product": share_text(p.product)}
                for p in own.ownership_paths(structure.graph, owner.id, org, limit=PATHS_PER_OWNER)
            ]
        out.append(item)
    out.sort(key=lambda o: (-Decimal(o["share"]), o["id"]))
    return out


def entity_beneficial_owners(*, entity_id: str, threshold: Decimal = Decimal("0.25"),
                             viewer: Any = None) -> dict[str, Any]:
    """`GET entities/{id}/beneficial-owners`: persons with integrated ownership ≥ threshold and the
    active actual controllers, largest share first, each with the paths that explain it."""
    structure = ownership_structure()
    known = _entity(entity_id, structure)
    mask = IdentifierMask.for_user(viewer, {known.id: known.kind})
    owners = (_owners(structure, known.id, float(threshold), with_paths=True, mask=mask)
              if known.kind != "person" else [])
    return {"entity": mask(known.id), "threshold": str(threshold), "owners": owners}


def entity_detail(*, entity_id: str, viewer: Any = None) -> dict[str, Any]:
    """`GET entities/{id}`: who it is, where it is known, its accounts, controller, group and
    beneficial owners (threshold 25 %)."""
    structure = ownership_structure()
    known = _entity(entity_id, structure)
    chains = sorted(set(EntityRegistration.objects.order_by().filter(entity_id=known.id)
                        .values_list("chain_id", flat=True)))
    accounts = [
        {"chain": c, "account": a, "broker": b}
        for c, a, b in Account.objects.order_by().filter(holder_id=known.id).order_by("chain_id", "account")
        .values_list("chain_id", "account", "broker_id")
    ]
    groups = structure.groups
    controller_id = groups.controller_of(known.id)
    members = sorted(groups.members(groups.group_of(known.id)) | {known.id})
    names = _names([*members, *([controller_id] if controller_id else [])])
    mask = IdentifierMask.for_user(viewer, {i: k for i, (k, _) in names.items()} | {known.id: known.kind})
    owners = (_owners(structure, known.id, own.BENEFICIAL_OWNER_THRESHOLD, with_paths=False, mask=mask)
              if known.kind != "person" else [])
    return {
        "id": mask(known.id),
        "kind": known.kind,
        "name": known.name,
        "chains": chains,
        "accounts": accounts,
        "controller": ({"id": mask(controller_id), "name": names.get(controller_id, ("", ""))[1]}
                       if controller_id else None),
        "group": [mask(m) for m in members],
        "beneficial_owners": owners,
    }


def entity_graph(*, entity_id: str, depth: int = 3, viewer: Any = None) -> dict[str, Any]:
    """`GET entities/{id}/graph`: entities within `depth` holding links, and the weighted edges
    among them (weight = direct fraction held), for drawing."""
    structure = ownership_structure()
    known = _entity(entity_id, structure)
    around = own.subgraph_around(structure.graph, known.id, depth=depth, max_nodes=GRAPH_MAX_NODES)
    nodes: Sequence[Mapping[str, Any]] = around["nodes"]  # type: ignore[assignment]
    edges: Sequence[Mapping[str, Any]] = around["edges"]  # type: ignore[assignment]
    if not nodes:
        nodes = [{"id": known.id, "kind": known.kind}]
    names = _names(n["id"] for n in nodes)
    kinds = {n["id"]: names.get(n["id"], (n["kind"], ""))[0] for n in nodes}
    mask = IdentifierMask.for_user(viewer, kinds)
    return {
        "nodes": [{"id": mask(n["id"]), "name": names.get(n["id"], ("", ""))[1], "kind": kinds[n["id"]]}
                  for n in nodes],
        "edges": [{"source": mask(e["source"]), "target": mask(e["target"]),
                   "weight": share_text(e["weight"])} for e in edges],
        "truncated": bool(around.get("truncated")),
    }


def entity_search(*, q: str, viewer: Any = None) -> QuerySet[Entity]:
    """`GET entities?q=`: entities whose id starts with `q`, whose name contains it, or that hold
    the account `q`. Without the person-identifier permission a person matches by id only when `q`
    is the whole id (no enumerating identity numbers by prefix)."""
    q = (q or "").strip()
    entities = Entity.objects.order_by("id")
    if not q:
        return entities
    reveal = can_see_person_ids(viewer)
    by_id = Q(id__istartswith=q) if reveal else (Q(id__istartswith=q) & ~Q(kind=Entity.Kind.PERSON)) | Q(id=q)
    holders = Account.objects.order_by().filter(account=q.upper()).values("holder_id")
    return entities.filter(by_id | Q(name__icontains=q) | Q(id__in=holders))


def entity_search_item(entity: Entity, mask: IdentifierMask) -> dict[str, Any]:
    mask.know({entity.id: entity.kind})
    return {"id": mask(entity.id), "kind": entity.kind, "name": entity.name}
