"""Ownership and control maths (supervision API §1, 穿透式监管). Pure: plain data in, plain data out.

Integrated ownership is `M = P (I − A)⁻¹` (API §1). We work with one matrix `W` over all entities,
`W[x, y]` = direct fraction of organisation `y` held by `x`. Nobody holds a person, so `W`'s
non-organisation columns are empty and `M = W (I − W)⁻¹` restricted to organisation columns is exactly
`P (I − A)⁻¹`; equivalently `M = W + M A` (every path ends with one direct holding).

Control follows API §1 literally, not a chain of control: an organisation's ultimate controller
(实际控制人) is the person with an active `actual_controller` role in it; otherwise the entity with
integrated ownership > 50 % of it that is not itself owned > 50 % (integrated) by someone else;
otherwise none. A control group is the entities sharing an ultimate controller, with that
controller, merged with the parties of active concert-party agreements. Thresholds use
`SHARE_TOLERANCE` (1e-9) so that 0.5 × 0.5 meets 25 %.

How it is solved (measured facts in STYLE.md: a monolithic LU of (I − A) is slow and huge):

* The strongly connected components of the org→org graph are found with `scipy.sparse.csgraph`;
  each org gets a *level* in the condensation (0 = no organisation outside its own component holds it).
* Whole matrix (`integrated_matrix`): with `D` the within-component part of `A` and `E = A − D`,
  `Mᵀ = Wᵀ + Aᵀ Mᵀ` gives, level by level from the top holders down, each level's columns of `M`
  as one sparse product of columns already computed; `(I − D)⁻¹` is block diagonal and is computed
  on the cyclic blocks only (`splu(permc_spec="NATURAL")`, batched). Weak components need no
  separate loop: the products never mix them, and one vectorised sweep over all of them beats a
  Python loop over 100k small ones.
* One column (`integrated_owners_of`): the subgraph that reaches the organisation is ordered
  holders-before-issuers (condensation order), which makes `I − B` block triangular, so an
  `splu` with natural ordering and diagonal pivots fills in only inside cyclic blocks. Diagonal
  pivots are stable here: with every org's holders summing to ≤ 1, `I − B` is diagonally dominant.

Bad data: an issuer whose holders sum to more than 100 % raises `OwnershipDataError` (or is scaled to
100 % on request). A closed loop — a cycle of organisations held entirely by each other, so that
`I − A` is singular — always raises `OwnershipDataError` naming its organisations: no finite answer
exists and the caller must drop or correct those snapshots.
"""

from __future__ import annotations

import gc
import itertools
import math
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from typing import Literal, TypedDict

import networkx as nx
import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray
from scipy.sparse import csgraph
from scipy.sparse.linalg import SuperLU, splu

from businesschain.errors import Unprocessable

from .findings import SHARE_TOLERANCE, Finding

Kind = Literal["org", "person", "unknown"]
ORG, PERSON, UNKNOWN = 0, 1, 2
KIND_NAMES: tuple[Kind, ...] = ("org", "person", "unknown")
KIND_CODES: dict[str, int] = {"org": ORG, "person": PERSON, "unknown": UNKNOWN}

MAJORITY = 0.5
BENEFICIAL_OWNER_THRESHOLD = 0.25
RELATED_STAKE = 0.05
ACTUAL_CONTROLLER = "actual_controller"
_CLOSED_LOOP_SLACK = 1e-12  # a block whose members are all ≥ 1 − this held inside it is singular
_SHARE_DIGITS = 12  # shares agreeing to 12 places tie (owners then go by id)
_LU_BATCH_CLASSES = (8, 64)  # cyclic blocks up to 64 orgs are factorised together by size class

IntArray = NDArray[np.int64]
FloatArray = NDArray[np.float64]


class OwnershipDataError(Unprocessable):
    """Holdings that admit no integrated ownership (over 100 %, closed loops, persons as issuers)."""

    default_code = "inconsistent_ownership"


# ---------------------------------------------------------------------------------------------
# Plain input and output records
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Holding:
    """The latest `shareholding` snapshot of one (holder, issuer) pair, already resolved by the caller."""

    holder: str
    issuer: str
    shares: int
    total_shares: int


@dataclass(frozen=True, slots=True)
class Role:
    org: str
    person: str
    role: str
    active: bool


@dataclass(frozen=True, slots=True)
class ConcertParty:
    issuer: str
    parties: tuple[str, ...]
    active: bool


@dataclass(frozen=True, slots=True)
class BeneficialOwner:
    id: str
    share: float
    direct: float
    reasons: tuple[str, ...]  # "ownership" and/or "actual_controller"


@dataclass(frozen=True, slots=True)
class Path:
    nodes: tuple[str, ...]
    fractions: tuple[float, ...]
    product: float


@dataclass(frozen=True, slots=True)
class HoldingCycle:
    """A circular holding: one concrete cycle, rotated to start at its smallest id, and its whole SCC."""

    orgs: tuple[str, ...]
    fractions: tuple[float, ...]  # fractions[i] = share of orgs[i+1] held by orgs[i] (wrapping)
    members: tuple[str, ...]

    @property
    def fingerprint(self) -> str:
        return "circular_holding:" + ">".join(self.orgs)


class DrawingNode(TypedDict):
    id: str
    kind: Kind


class DrawingEdge(TypedDict):
    source: str
    target: str
    weight: float


class Drawing(TypedDict):
    nodes: list[DrawingNode]
    edges: list[DrawingEdge]
    truncated: bool  # max_nodes cut the last layer


class RoleIndex:
    """Active roles looked up by organisation and by person. Inactive roles are dropped here."""

    def __init__(self, roles: Iterable[Role]) -> None:
        state: dict[tuple[str, str, str], bool] = {}
        for r in roles:  # the caller resolves history; if a triple repeats, the last record wins
            state[(r.org, r.person, r.role)] = r.active
        self.persons_of: dict[str, set[str]] = defaultdict(set)
        self.orgs_of: dict[str, set[str]] = defaultdict(set)
        self.controllers_of: dict[str, list[str]] = defaultdict(list)
        for (org, person, role), active in sorted(state.items()):
            if not active:
                continue
            self.persons_of[org].add(person)
            self.orgs_of[person].add(org)
            if role == ACTUAL_CONTROLLER:
                self.controllers_of[org].append(person)

    @classmethod
    def of(cls, roles: RoleIndex | Iterable[Role]) -> RoleIndex:
        return roles if isinstance(roles, RoleIndex) else cls(roles)

    def actual_controllers(self, org: str) -> list[str]:
        return self.controllers_of.get(org, [])


# ---------------------------------------------------------------------------------------------
# The graph
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Structure:
    org_idx: IntArray  # entity index of each org (org-local numbering)
    A: sp.csr_matrix  # org→org direct fractions, org-local
    labels: IntArray  # SCC label per org
    cyclic: NDArray[np.bool_]  # per label: size ≥ 2 or a self-holding
    level: IntArray  # per org, condensation level (0 = no org holder outside its own SCC)
    perm: IntArray  # org-local ids by (level, SCC): level l is perm[bounds[l]:bounds[l+1]]
    bounds: IntArray
    topo_pos: IntArray  # per entity: position in a holders-before-issuers order


class OwnershipGraph:
    """Direct ownership fractions between indexed entities. Build with `build` or `from_arrays`."""

    def __init__(self, ids: Sequence[str], kinds: NDArray[np.int8], W: sp.csr_matrix,
                 scaled_issuers: tuple[str, ...] = ()) -> None:
        self.ids = list(ids)
        self.kinds = kinds
        self.W = W
        self.scaled_issuers = scaled_issuers  # issuers whose holdings were scaled down to 100 %

    @classmethod
    def build(cls, holdings: Iterable[Holding], kinds: Mapping[str, str], *,
              oversubscribed: Literal["raise", "scale"] = "raise") -> OwnershipGraph:
        """From resolved snapshots. `kinds` maps ids to "org"/"person"; an unlisted issuer is an org,
        an unlisted pure holder is "unknown" (neither a person nor an organisation)."""
        index: dict[str, int] = {}
        holder: list[int] = []
        issuer: list[int] = []
        shares: list[int] = []
        total: list[int] = []
        for h in holdings:
            holder.append(index.setdefault(h.holder, len(index)))
            issuer.append(index.setdefault(h.issuer, len(index)))
            shares.append(h.shares)
            total.append(h.total_shares)
        ids = list(index)
        codes = np.empty(len(ids), dtype=np.int8)
        for i, entity in enumerate(ids):
            kind = kinds.get(entity, "unknown")
            if kind not in KIND_CODES:
                raise ValueError(f"unknown entity kind {kind!r} for {entity}")
            codes[i] = KIND_CODES[kind]
        graph = cls.from_arrays(ids, codes, np.asarray(holder, dtype=np.int64),
                                np.asarray(issuer, dtype=np.int64), np.asarray(shares, dtype=np.int64),
                                np.asarray(total, dtype=np.int64), oversubscribed=oversubscribed)
        graph.__dict__["index"] = index
        return graph

    @classmethod
    def from_arrays(cls, ids: Sequence[str], kinds: NDArray[np.int8], holder: IntArray, issuer: IntArray,
                    shares: IntArray, total_shares: IntArray, *,
                    oversubscribed: Literal["raise", "scale"] = "raise") -> OwnershipGraph:
        """Vectorised builder: `holder[k]` holds `shares[k]` of `total_shares[k]` of `issuer[k]`."""
        n = len(ids)
        kinds = np.array(kinds, dtype=np.int8, copy=True)
        if np.any(total_shares <= 0) or np.any(shares < 0) or np.any(shares > total_shares):
            bad = np.flatnonzero((total_shares <= 0) | (shares < 0) | (shares > total_shares))
            pairs = [(ids[holder[k]], ids[issuer[k]]) for k in bad[:10]]
            raise OwnershipDataError("shares outside 0..total_shares", pairs=pairs)
        live = shares > 0  # a zero snapshot ends the holding
        holder, issuer = holder[live], issuer[live]
        frac = shares[live] / total_shares[live]
        issuers = np.unique(issuer)
        if np.any(kinds[issuers] == PERSON):
            bad_ids = [ids[i] for i in issuers[kinds[issuers] == PERSON][:10]]
            raise OwnershipDataError("a person cannot be an issuer", entities=bad_ids)
        kinds[issuers] = ORG  # an issuer of unknown kind is an organisation
        key = holder * n + issuer
        uniq, counts = np.unique(key, return_counts=True)
        if np.any(counts > 1):
            dup = uniq[counts > 1][:10]
            raise OwnershipDataError("more than one snapshot per (holder, issuer)",
                                     pairs=[(ids[k // n], ids[k % n]) for k in dup])
        held = np.bincount(issuer, weights=frac, minlength=n)
        over = np.flatnonzero(held > 1 + SHARE_TOLERANCE)
        if over.size and oversubscribed == "raise":
            raise OwnershipDataError("holders of an issuer sum to more than 100 %",
                                     issuers=[ids[i] for i in over[:10].tolist()])
        if over.size:
            frac = frac / np.maximum(held[issuer], 1.0)
        W = sp.csr_matrix((frac, (holder, issuer)), shape=(n, n))
        W.sort_indices()
        return cls(ids, kinds, W, tuple(ids[i] for i in over.tolist()))

    # -- lookups ---------------------------------------------------------------------------

    @property
    def n(self) -> int:
        return len(self.ids)

    @cached_property
    def index(self) -> dict[str, int]:
        return {entity: i for i, entity in enumerate(self.ids)}

    @cached_property
    def WT(self) -> sp.csr_matrix:
        return self.W.T.tocsr()

    def __contains__(self, entity: object) -> bool:
        return entity in self.index

    def kind_of(self, entity: str) -> Kind:
        i = self.index.get(entity)
        return "unknown" if i is None else KIND_NAMES[int(self.kinds[i])]

    def direct(self, holder: str, issuer: str) -> float:
        i, j = self.index.get(holder), self.index.get(issuer)
        if i is None or j is None:
            return 0.0
        return _entry(self.W, i, j)

    # -- structure -------------------------------------------------------------------------

    @cached_property
    def structure(self) -> _Structure:
        """SCCs, condensation levels and a holders-before-issuers order; raises on closed loops."""
        org_idx = np.flatnonzero(self.kinds == ORG).astype(np.int64)
        A = self.W[org_idx][:, org_idx].tocsr()
        n_o = len(org_idx)
        n_labels, labels = csgraph.connected_components(A, directed=True, connection="strong")
        labels = labels.astype(np.int64)
        coo = A.tocoo()
        r, c = coo.row.astype(np.int64), coo.col.astype(np.int64)
        inside = labels[r] == labels[c]
        sizes = np.bincount(labels, minlength=n_labels)
        cyclic = sizes >= 2
        cyclic[labels[r[inside & (r == c)]]] = True
        _check_closed_loops(self, org_idx, labels, cyclic, r[inside], c[inside], coo.data[inside])
        lab_level = _condensation_levels(n_labels, labels[c[~inside]], labels[r[~inside]])
        level = lab_level[labels]
        perm = np.lexsort((labels, level)).astype(np.int64)
        n_levels = int(level.max()) + 1 if n_o else 0
        bounds = np.searchsorted(level[perm], np.arange(n_levels + 1)).astype(np.int64)
        topo_pos = np.empty(self.n, dtype=np.int64)
        non_org = np.flatnonzero(self.kinds != ORG)
        topo_pos[non_org] = np.arange(len(non_org))  # nobody holds them: they come first
        topo_pos[org_idx[perm]] = len(non_org) + np.arange(n_o)
        return _Structure(org_idx, A, labels, cyclic, level, perm, bounds, topo_pos)


def _entry(m: sp.csr_matrix | sp.csc_matrix, i: int, j: int) -> float:
    """m[i, j] for CSR or CSC, sorted or not, without scipy's per-call indexing overhead."""
    major, minor = (j, i) if m.format == "csc" else (i, j)
    lo, hi = m.indptr[major], m.indptr[major + 1]
    if not m.has_sorted_indices:
        hit = np.flatnonzero(m.indices[lo:hi] == minor)
        return float(m.data[lo + hit[0]]) if hit.size else 0.0
    k = lo + int(np.searchsorted(m.indices[lo:hi], minor))
    return float(m.data[k]) if k < hi and m.indices[k] == minor else 0.0


def _gather(indptr: NDArray[np.integer], values: NDArray[np.integer], rows: IntArray) -> IntArray:
    """Concatenate `values[indptr[r]:indptr[r+1]]` for every r in rows, without a Python loop."""
    starts = indptr[rows].astype(np.int64)
    lens = indptr[rows + 1].astype(np.int64) - starts
    total = int(lens.sum())
    if total == 0:
        return np.empty(0, dtype=np.int64)
    shift = np.repeat(starts - (np.cumsum(lens) - lens), lens)
    return values[shift + np.arange(total)].astype(np.int64)


def _bfs(adj: sp.csr_matrix | Sequence[sp.csr_matrix], seeds: IntArray,
         max_depth: int | None = None) -> list[IntArray]:
    """Breadth-first layers from seeds (layer 0 = seeds) over the union of the adjacency matrices."""
    adjs = [adj] if isinstance(adj, sp.spmatrix | sp.sparray) else list(adj)
    seen = np.zeros(adjs[0].shape[0], dtype=bool)
    seen[seeds] = True
    layers = [seeds]
    while layers[-1].size and (max_depth is None or len(layers) <= max_depth):
        nxt = np.unique(np.concatenate([_gather(a.indptr, a.indices, layers[-1]) for a in adjs]))
        nxt = nxt[~seen[nxt]]
        seen[nxt] = True
        if not nxt.size:
            break
        layers.append(nxt)
    return layers


def _condensation_levels(n_labels: int, src: IntArray, dst: IntArray) -> IntArray:
    """Longest-path level of each node of the DAG src → dst, counted from the nodes without
    out-edges (Kahn's algorithm, one numpy round per level)."""
    if src.size:
        key = np.unique(src * n_labels + dst)
        src, dst = key // n_labels, key % n_labels
    remaining = np.bincount(src, minlength=n_labels)  # out-edges to components not yet levelled
    order = np.argsort(dst, kind="stable")
    preds = src[order]
    ptr = np.searchsorted(dst[order], np.arange(n_labels + 1))
    level = np.zeros(n_labels, dtype=np.int64)
    frontier = np.flatnonzero(remaining == 0)
    depth = 0
    while frontier.size:
        level[frontier] = depth
        hit = _gather(ptr, preds, frontier)
        np.subtract.at(remaining, hit, 1)
        hit = np.unique(hit)
        frontier = hit[remaining[hit] == 0]
        depth += 1
    return level


def _check_closed_loops(graph: OwnershipGraph, org_idx: IntArray, labels: IntArray,
                        cyclic: NDArray[np.bool_], r: IntArray, c: IntArray, data: FloatArray) -> None:
    """A cyclic block is singular when every member is held ~100 % from inside the block
    (then ρ = 1; with any member held < 100 % inside, the Perron bound gives ρ < 1)."""
    inside_held = np.bincount(c, weights=data, minlength=len(labels))
    least = np.full(len(cyclic), np.inf)
    np.minimum.at(least, labels, inside_held)
    closed = np.flatnonzero(cyclic & (least >= 1 - _CLOSED_LOOP_SLACK))
    if closed.size:
        members = np.flatnonzero(np.isin(labels, closed[:5]))
        raise OwnershipDataError(
            "closed ownership loop: organisations held entirely by each other (I − A is singular)",
            orgs=sorted(graph.ids[i] for i in org_idx[members][:50]))


# ---------------------------------------------------------------------------------------------
# Integrated ownership
# ---------------------------------------------------------------------------------------------


def _lu_natural(m: sp.spmatrix) -> SuperLU:
    # NATURAL: the caller ordered the matrix so it is (block) triangular; any other ordering
    # destroys that (~3,000× slower here). Diagonal pivots: the matrix is diagonally dominant.
    return splu(sp.csc_matrix(m), permc_spec="NATURAL", diag_pivot_thresh=0.0)


def _solve_column(graph: OwnershipGraph, entity: int) -> tuple[IntArray, FloatArray]:
    """Column `entity` of M (who owns `entity`), over the entities that reach it."""
    s = graph.structure
    nodes = np.concatenate(_bfs(graph.WT, np.array([entity], dtype=np.int64)))
    if nodes.size == 1 and _entry(graph.W, entity, entity) == 0.0:
        return nodes[:0], np.empty(0)
    nodes = nodes[np.argsort(s.topo_pos[nodes], kind="stable")]
    sub = graph.W[nodes][:, nodes]
    lu = _lu_natural(sp.identity(len(nodes), format="csc") - sub)
    k = int(np.flatnonzero(nodes == entity)[0])
    rhs = np.zeros(len(nodes))
    rhs[k] = 1.0
    # (I − W)⁻¹ = I + M, so M's column is the solve minus the unit vector.
    x = lu.solve(rhs)
    x[k] -= 1.0
    return nodes, x


def _as_dict(graph: OwnershipGraph, nodes: IntArray, values: FloatArray, exclude: int) -> dict[str, float]:
    keep = (values > 0) & (nodes != exclude)
    return {graph.ids[i]: float(v) for i, v in zip(nodes[keep], values[keep], strict=True)}


def integrated_owners_of(graph: OwnershipGraph, org: str) -> dict[str, float]:
    """Integrated ownership in `org` of every entity that reaches it (`org` itself excluded)."""
    j = graph.index.get(org)
    if j is None:
        return {}
    nodes, values = _solve_column(graph, j)
    return _as_dict(graph, nodes, values, j)


def _block_inverse(graph: OwnershipGraph) -> sp.csr_matrix:
    """(I − D)⁻¹ for D = the within-SCC part of A: identity outside cyclic blocks, inverses inside.

    Small blocks (the usual 2–3-org cross-holdings, thousands of them) are batched by size class into
    one block-diagonal natural-order sparse LU, solved against one right-hand side per in-block
    position: blocks do not interact, so column k of the solve is column k of every block's
    inverse at once. A strongly connected block's inverse is dense, so blocks above 64 orgs go to
    LAPACK directly (a 200-org block, measured here: 2 ms dense, 150 ms through SuperLU's
    many-right-hand-side solve)."""
    s = graph.structure
    n_o = len(s.org_idx)
    in_cyclic = s.cyclic[s.labels]
    nodes = np.flatnonzero(in_cyclic)
    nodes = nodes[np.argsort(s.labels[nodes], kind="stable")]
    sizes = np.bincount(s.labels[nodes], minlength=len(s.cyclic))[s.labels[nodes]]
    rows: list[IntArray] = [np.flatnonzero(~in_cyclic)]
    cols: list[IntArray] = [rows[0]]
    vals: list[FloatArray] = [np.ones(len(rows[0]))]
    lower = 0
    for cap in _LU_BATCH_CLASSES:
        group = nodes[(sizes > lower) & (sizes <= cap)]
        if group.size:
            _block_inverse_batch(graph, group, rows, cols, vals)
        lower = cap
    big = nodes[sizes > lower]
    for label in np.unique(s.labels[big]):
        members = big[s.labels[big] == label]
        inv = np.linalg.inv(np.eye(len(members)) - s.A[members][:, members].toarray())
        _check_inverse(graph, members, inv)
        rows.append(np.repeat(members, len(members)))
        cols.append(np.tile(members, len(members)))
        vals.append(inv.ravel())
    return sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                         shape=(n_o, n_o))


def _check_inverse(graph: OwnershipGraph, members: IntArray, inv: FloatArray) -> None:
    if not np.all(np.isfinite(inv)) or inv.min() < -1e-9:
        raise OwnershipDataError("ownership cycle with no finite integrated ownership",
                                 orgs=sorted(graph.ids[i] for i in graph.structure.org_idx[members[:50]]))


def _block_inverse_batch(graph: OwnershipGraph, group: IntArray, rows: list[IntArray],
                         cols: list[IntArray], vals: list[FloatArray]) -> None:
    s = graph.structure
    labels = s.labels[group]
    sub = s.A[group][:, group].tocoo()
    inside = labels[sub.row] == labels[sub.col]  # D only: edges between batched blocks belong to E
    block = sp.csc_matrix((sub.data[inside], (sub.row[inside], sub.col[inside])), shape=sub.shape)
    lu = _lu_natural(sp.identity(len(group), format="csc") - block)
    starts_mask = np.r_[True, labels[1:] != labels[:-1]]
    start_pos = np.flatnonzero(starts_mask)
    size = np.diff(np.r_[start_pos, len(group)])
    block_of = np.cumsum(starts_mask) - 1
    first = start_pos[block_of]  # position of each node's block start
    k = np.arange(len(group)) - first  # position inside its block
    width = int(size.max())
    rhs = np.zeros((len(group), width))
    rhs[np.arange(len(group)), k] = 1.0
    x = lu.solve(rhs)
    _check_inverse(graph, group, x)
    reps = size[block_of]
    r = np.repeat(np.arange(len(group)), reps)
    kk = np.arange(int(reps.sum())) - np.repeat(np.cumsum(reps) - reps, reps)
    rows.append(group[r])
    cols.append(group[np.repeat(first, reps) + kk])
    vals.append(x[r, kk])


def integrated_matrix(graph: OwnershipGraph, *, prune: float = 0.0) -> sp.csc_matrix:
    """The integrated ownership matrix `M` (n × n, indexed like `graph.ids`; column y = everyone's
    integrated ownership of organisation y; the diagonal holds what an organisation gets back
    through its own cycles). CSC, because the questions asked of it are per organisation; row
    indices within a column are not sorted (call `sort_indices()` if a consumer needs them).

    `prune > 0` drops computed entries below it as the sweep goes. Every kept entry is then a lower
    bound of the exact value, at most `prune × levels` below it (`integrated_error_bound`): each
    organisation's holders sum to ≤ 100 %, so an error passes to the next level at most undiluted.
    Long paths through large cross-holding groups create masses of ~1e-15 entries: a synthetic
    1M-holding graph whose business groups had merged into one 849-org SCC gave 131M entries
    (11 s, ~4 GiB), of which 15M ≥ 1e-12 (2.5 s, 0.7 GiB with prune=1e-12).

    Sweep (top-down over condensation levels): with `T = Mᵀ` restricted to organisation rows,
    `T = Wᵀ + Aᵀ T`, so for a level's rows R, `T_R = (I − D_Rᵀ)⁻¹ (Wᵀ_R + E_Rᵀ T)`, `D` being the
    within-SCC part of `A` and `E` the rest, whose rows come from earlier levels only."""
    s = graph.structure
    n_o = len(s.org_idx)
    perm = s.perm
    orgs = s.org_idx[perm]
    base = graph.WT[orgs].tocsr()  # row y: y's direct holders (entity columns)
    AT = s.A.T.tocsr()[perm][:, perm].tocsr()  # row y: y's org holders, level-sorted positions
    ZT = _block_inverse(graph).T.tocsr()[perm][:, perm].tocsr()
    lab = s.labels[perm]
    coo = AT.tocoo()
    cross = lab[coo.row] != lab[coo.col]
    ET = sp.csr_matrix((coo.data[cross], (coo.row[cross], coo.col[cross])), shape=(n_o, n_o))
    eye = sp.identity(graph.n, format="csr")
    level_of_pos = s.level[perm]
    cyclic_pos = s.cyclic[lab]
    blocks: list[sp.csr_matrix] = []
    for lv in range(len(s.bounds) - 1):
        lo, hi = int(s.bounds[lv]), int(s.bounds[lv + 1])
        rows = base[lo:hi]
        cross_rows = ET[lo:hi]
        if cross_rows.nnz:
            # Only the rows of this level's holders, gathered from earlier levels' blocks;
            # Wᵀ_R + E_Rᵀ·T as the single product [Wᵀ_R | E_Rᵀ] · [I ; T_holders] (no separate add).
            holders = np.unique(cross_rows.indices)
            cuts = np.searchsorted(level_of_pos[holders], np.arange(lv + 1))
            parts = [blocks[lw][holders[cuts[lw]:cuts[lw + 1]] - s.bounds[lw]]
                     for lw in range(lv) if cuts[lw + 1] > cuts[lw]]
            compact = sp.csr_matrix((cross_rows.data, np.searchsorted(holders, cross_rows.indices),
                                     cross_rows.indptr), shape=(hi - lo, len(holders)))
            rows = sp.hstack([rows, compact], format="csr") @ sp.vstack([eye, *parts], format="csr")
        if cyclic_pos[lo:hi].any():
            rows = ZT[lo:hi, lo:hi] @ rows
        rows = sp.csr_matrix(rows)
        if prune > 0:
            rows.data[rows.data < prune] = 0.0
            rows.eliminate_zeros()
        blocks.append(rows)
    T = sp.vstack([*blocks, sp.csr_matrix((1, graph.n))], format="csr")  # + one empty row
    del blocks, base, AT, ET, ZT
    # Row y of Mᵀ is org y's block row; non-organisations take the empty last row.
    pick = np.full(graph.n, n_o, dtype=np.int64)
    pick[orgs] = np.arange(n_o)
    T = T[pick]
    return sp.csc_matrix((T.data, T.indices, T.indptr), shape=(graph.n, graph.n))


def integrated_error_bound(graph: OwnershipGraph, prune: float) -> float:
    """Largest amount by which an entry of `integrated_matrix(graph, prune=prune)` can fall short."""
    return prune * (len(graph.structure.bounds) - 1) * (1 + SHARE_TOLERANCE)


# ---------------------------------------------------------------------------------------------
# Beneficial owners, controllers, groups, related parties
# ---------------------------------------------------------------------------------------------


def beneficial_owners(graph: OwnershipGraph, org: str, roles: RoleIndex | Iterable[Role],
                      threshold: float = BENEFICIAL_OWNER_THRESHOLD) -> list[BeneficialOwner]:
    """Persons with integrated ownership ≥ threshold, plus active actual controllers (API §1)."""
    owners = integrated_owners_of(graph, org)
    controllers = set(RoleIndex.of(roles).actual_controllers(org))
    return _beneficial_owners(graph, org, owners, controllers, threshold)


def _beneficial_owners(graph: OwnershipGraph, org: str, owners: Mapping[str, float],
                       controllers: set[str], threshold: float) -> list[BeneficialOwner]:
    found: list[BeneficialOwner] = []
    for person in set(owners) | controllers:
        share = owners.get(person, 0.0)
        reasons: tuple[str, ...] = ()
        if share >= threshold - SHARE_TOLERANCE and graph.kind_of(person) == "person":
            reasons += ("ownership",)
        if person in controllers:
            reasons += (ACTUAL_CONTROLLER,)
        if reasons:
            found.append(BeneficialOwner(person, share, graph.direct(person, org), reasons))
    found.sort(key=lambda b: (-round(b.share, _SHARE_DIGITS), b.id))
    return found


def beneficial_owners_all(graph: OwnershipGraph, roles: RoleIndex | Iterable[Role],
                          threshold: float = BENEFICIAL_OWNER_THRESHOLD,
                          matrix: sp.spmatrix | None = None) -> dict[str, list[BeneficialOwner]]:
    """Beneficial owners of every organisation from one integrated matrix (only orgs that have any)."""
    index = RoleIndex.of(roles)
    M = integrated_matrix(graph) if matrix is None else matrix
    M = M.tocsc()
    hit = np.flatnonzero(M.data >= threshold - SHARE_TOLERANCE)
    cols = np.searchsorted(M.indptr, hit, side="right") - 1
    rows = M.indices[hit].astype(np.int64)
    person = graph.kinds[rows] == PERSON
    hit, rows, cols = hit[person], rows[person], cols[person]
    share = M.data[hit]
    direct = np.asarray(graph.W[rows, cols]).ravel() if hit.size else np.empty(0)
    ids = graph.ids
    order = _owner_order(ids, rows, cols, share)
    result: dict[str, list[BeneficialOwner]] = defaultdict(list)
    with gc_paused():  # ~10⁵ acyclic objects: generational GC rescans would double the time
        for r, c, v, d in zip(rows[order].tolist(), cols[order].tolist(), share[order].tolist(),
                              direct[order].tolist(), strict=True):
            result[ids[c]].append(BeneficialOwner(ids[r], v, d, ("ownership",)))
    for org, persons in index.controllers_of.items():  # few: merged one org at a time
        j = graph.index.get(org)
        shares = {b.id: b.share for b in result.get(org, ())}
        for p in persons:
            i = graph.index.get(p)
            if p not in shares:
                shares[p] = _entry(M, i, j) if i is not None and j is not None else 0.0
        result[org] = _beneficial_owners(graph, org, shares, set(persons), threshold)
    return dict(result)


def _owner_order(ids: Sequence[str], rows: IntArray, cols: IntArray, share: FloatArray) -> IntArray:
    """Positions by org, then share descending, then owner id, as `_beneficial_owners` orders one
    org's owners (shares compared to 12 places, so the two computations agree on ties). Rows sort
    by index first; only runs of equal shares are re-sorted by id (few)."""
    rounded = np.round(share, _SHARE_DIGITS)
    order = np.lexsort((rows, -rounded, cols))
    c, v = cols[order], rounded[order]
    tie = np.flatnonzero((c[1:] == c[:-1]) & (v[1:] == v[:-1]))
    if tie.size:
        gap = np.diff(tie) > 1
        for start, stop in zip(tie[np.r_[True, gap]].tolist(), (tie[np.r_[gap, True]] + 2).tolist(),
                               strict=True):
            order[start:stop] = sorted(order[start:stop].tolist(), key=lambda k: ids[int(rows[k])])
    return order


@contextmanager
def gc_paused() -> Iterator[None]:
    """The cyclic garbage collector off for a burst of short-lived or acyclic allocations: the
    objects are freed by reference counting, and collections triggered on the way would rescan
    every long-lived object (a whole-heap pass took 100–200 ms in the per-block benchmark)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _choose_controller_role(persons: Iterable[str], share: Mapping[str, float]) -> str:
    return min(persons, key=lambda p: (-round(share.get(p, 0.0), 12), p))


def _top_majority_owner(graph: OwnershipGraph, owners: Mapping[str, float]) -> str | None:
    """Of the > 50 % integrated owners, the one not itself owned > 50 % (integrated) by someone
    else; the largest share, then the smallest id, if several qualify."""
    tops = [x for x, v in owners.items()
            if v > MAJORITY + SHARE_TOLERANCE and not _majority_owned(graph, x)]
    if not tops:
        return None
    return min(tops, key=lambda x: (-round(owners[x], 12), x))


def _majority_owned(graph: OwnershipGraph, entity: str) -> bool:
    if entity not in graph:
        return False
    return any(v > MAJORITY + SHARE_TOLERANCE for v in integrated_owners_of(graph, entity).values())


def ultimate_controller(graph: OwnershipGraph, org: str, roles: RoleIndex | Iterable[Role]) -> str | None:
    """实际控制人, exactly as supervision API §1 defines it: the person with an active
    `actual_controller` role in `org`; otherwise the entity with integrated ownership > 0.5 of
    `org` that is not itself owned > 0.5 (integrated) by someone else; otherwise None.

    This is not a walk up a chain of control: if Q owns 60 % of H and H 60 % of T, T's only
    > 0.5 owner is H, which Q owns > 0.5, so T has no ultimate controller (Q's 36 % is not > 0.5).
    """
    index = RoleIndex.of(roles)
    owners = integrated_owners_of(graph, org) if org in graph else {}
    acs = index.actual_controllers(org)
    if acs:
        return _choose_controller_role(acs, owners)
    return _top_majority_owner(graph, owners)


class ControlGroups:
    """Control groups (API §1): entities sharing an ultimate controller with that controller, merged
    with active concert parties. A group's id is the smallest id among its heads (entities with no
    ultimate controller), so it survives members joining below the top."""

    def __init__(self, ids: list[str], group: list[str], controller: list[str | None]) -> None:
        self._index = {entity: i for i, entity in enumerate(ids)}
        self._ids = ids
        self._group = group
        self._controller = controller

    def group_of(self, entity: str) -> str:
        i = self._index.get(entity)
        return entity if i is None else self._group[i]

    def controller_of(self, entity: str) -> str | None:
        i = self._index.get(entity)
        return None if i is None else self._controller[i]

    @cached_property
    def group_by_entity(self) -> dict[str, str]:
        """`group_of` of every entity given, as a dict (an entity not in it is its own group)."""
        return dict(zip(self._ids, self._group, strict=True))

    @cached_property
    def members_by_group(self) -> dict[str, frozenset[str]]:
        """The members of every group of the entities given; an entity not given is a group of
        its own (`members`)."""
        groups: dict[str, set[str]] = defaultdict(set)
        for entity, g in zip(self._ids, self._group, strict=True):
            groups[g].add(entity)
        return {g: frozenset(m) for g, m in groups.items()}

    def members(self, group_id: str) -> frozenset[str]:
        return self.members_by_group.get(group_id, frozenset({group_id}))


def control_groups(graph: OwnershipGraph, roles: RoleIndex | Iterable[Role],
                   concert_parties: Iterable[ConcertParty], *,
                   matrix: sp.spmatrix | None = None) -> ControlGroups:
    """All control groups at once: one integrated matrix gives every organisation its ultimate
    controller (API §1, as `ultimate_controller`), and groups are the weak components of the
    entity–controller links plus the links among the parties of each active concert party."""
    index = RoleIndex.of(roles)
    M = integrated_matrix(graph) if matrix is None else matrix
    ids = list(graph.ids)
    pos = dict(graph.index)
    parties = [p for p in concert_parties if p.active and len(p.parties) >= 2]
    for extra in [*(p for ps in index.controllers_of.values() for p in ps), *index.controllers_of,
                  *(x for cp in parties for x in cp.parties)]:
        if extra not in pos:
            pos[extra] = len(ids)
            ids.append(extra)
    n = len(ids)
    if n == 0:
        return ControlGroups([], [], [])
    parent = np.full(n, -1, dtype=np.int64)  # each entity's ultimate controller
    rank = np.argsort(np.argsort(np.array(ids, dtype=object), kind="stable"))  # string order of ids

    coo = M.tocoo()
    pick = (coo.data > MAJORITY + SHARE_TOLERANCE) & (coo.row != coo.col)
    r, c, v = coo.row[pick].astype(np.int64), coo.col[pick].astype(np.int64), coo.data[pick]
    majority_owned = np.zeros(n, dtype=bool)
    majority_owned[c] = True
    keep = ~majority_owned[r]  # owners that are themselves owned > 0.5 cannot control
    r, c, v = r[keep], c[keep], v[keep]
    if r.size:
        order = np.lexsort((rank[r], -np.round(v, 12), c))
        first = order[np.r_[True, c[order][1:] != c[order][:-1]]]
        parent[c[first]] = r[first]

    extra_links: list[tuple[int, int]] = []
    for org, persons in index.controllers_of.items():
        j = pos[org]
        shares = {p: (_entry(M, pos[p], j) if pos[p] < graph.n and j < graph.n else 0.0) for p in persons}
        chosen = _choose_controller_role(persons, shares)
        parent[j] = pos[chosen]
        extra_links += [(j, pos[p]) for p in persons if p != chosen]  # joint controllers share the group
    for cp in parties:
        first_party = pos[cp.parties[0]]
        extra_links += [(first_party, pos[p]) for p in cp.parties[1:]]

    has_parent = np.flatnonzero(parent >= 0)
    head = parent < 0
    controller: list[str | None] = [ids[p] if p >= 0 else None for p in parent.tolist()]

    links = [(i, int(parent[i])) for i in has_parent.tolist()] + extra_links
    la = np.array([a for a, _ in links], dtype=np.int64)
    lb = np.array([b for _, b in links], dtype=np.int64)
    link_graph = sp.csr_matrix((np.ones(len(la)), (la, lb)), shape=(n, n))
    _, comp = csgraph.connected_components(link_graph, directed=False)
    best = np.full(comp.max() + 1, n, dtype=np.int64)
    np.minimum.at(best, comp[head], rank[head])
    fallback = np.full(comp.max() + 1, n, dtype=np.int64)
    np.minimum.at(fallback, comp, rank)
    best = np.where(best == n, fallback, best)  # a group without an uncontrolled member
    by_rank = np.argsort(rank)
    group = [ids[int(by_rank[best[k]])] for k in comp.tolist()]
    return ControlGroups(ids, group, controller)


class RelatedParties:
    """Related-party test (API §1): same control group, a shared person in an active role (any
    role; a person is linked to the organisations where they hold one), or ≥ 5 % direct stake."""

    def __init__(self, graph: OwnershipGraph, groups: ControlGroups,
                 roles: RoleIndex | Iterable[Role]) -> None:
        self.graph = graph
        self.groups = groups
        self.roles = RoleIndex.of(roles)

    def may_relate(self, entity: str) -> bool:
        """Whether `entity` can be related to anyone outside its control group: it has a person in
        an active role or holds one, or it has a direct stake in the graph (held or holding)."""
        return entity in self.roles.persons_of or entity in self.roles.orgs_of or entity in self.graph

    def _linked_persons(self, entity: str) -> set[str]:
        people = set(self.roles.persons_of.get(entity, ()))
        if entity in self.roles.orgs_of:
            people.add(entity)
        return people

    def reasons(self, a: str, b: str) -> list[str]:
        if a == b:
            return []
        found: list[str] = []
        if self.groups.group_of(a) == self.groups.group_of(b):
            found.append("same_group")
        found += [f"shared_person:{p}" for p in sorted(self._linked_persons(a) & self._linked_persons(b))]
        for holder, issuer in ((a, b), (b, a)):
            stake = self.graph.direct(holder, issuer)
            if stake >= RELATED_STAKE - SHARE_TOLERANCE:
                found.append(f"direct_stake:{holder}>{issuer}:{stake:.6f}")
        return found

    def __call__(self, a: str, b: str) -> list[str]:
        return self.reasons(a, b)


# ---------------------------------------------------------------------------------------------
# Explanations: paths, cycles, drawing (networkx on small extracted subgraphs only)
# ---------------------------------------------------------------------------------------------


def ownership_paths(graph: OwnershipGraph, holder: str, org: str, max_depth: int = 6,
                    limit: int = 20) -> list[Path]:
    """The most significant simple ownership paths holder → org (largest product first)."""
    i, j = graph.index.get(holder), graph.index.get(org)
    if i is None or j is None or i == j:
        return []
    down = _bfs(graph.W, np.array([i]), max_depth)
    up = _bfs(graph.WT, np.array([j]), max_depth)
    nodes = np.intersect1d(np.concatenate(down), np.concatenate(up))
    if j not in nodes or i not in nodes:
        return []
    sub = graph.W[nodes][:, nodes].tocoo()
    G = nx.DiGraph()
    for a, b, f in zip(sub.row.tolist(), sub.col.tolist(), sub.data.tolist(), strict=True):
        if a != b:
            G.add_edge(int(nodes[a]), int(nodes[b]), fraction=f, cost=-math.log(f))
    paths: list[Path] = []
    # Yen's k-shortest paths on −log(fraction) yields paths by decreasing product; cap the scan.
    for examined, p in enumerate(nx.shortest_simple_paths(G, i, j, weight="cost")):
        if examined >= 50 * limit or len(paths) >= limit:
            break
        if len(p) - 1 > max_depth:
            continue
        fr = tuple(G[a][b]["fraction"] for a, b in itertools.pairwise(p))
        paths.append(Path(tuple(graph.ids[k] for k in p), fr, math.prod(fr)))
    return paths


def find_cycles(graph: OwnershipGraph) -> list[HoldingCycle]:
    """Circular holdings (交叉持股/循环持股): every SCC of ≥ 2 organisations and every self-holding,
    each with a canonical cycle: a shortest one through the SCC's smallest id, found by BFS over
    id-sorted edges, so the same holdings always give the same cycle and fingerprint."""
    s = graph.structure
    ids = graph.ids
    coo = s.A.tocoo()
    r, c = coo.row.astype(np.int64), coo.col.astype(np.int64)
    inside = (s.labels[r] == s.labels[c]) & s.cyclic[s.labels[r]]
    # Every SCC's internal edges in one pass (grouped by label), not one matrix slice per SCC.
    edges_of: dict[int, list[tuple[str, str, float]]] = defaultdict(list)
    for lab, a, b, f in zip(s.labels[r[inside]].tolist(), s.org_idx[r[inside]].tolist(),
                            s.org_idx[c[inside]].tolist(), coo.data[inside].tolist(), strict=True):
        edges_of[lab].append((ids[a], ids[b], f))
    members_of: dict[int, list[str]] = defaultdict(list)
    for local in np.flatnonzero(s.cyclic[s.labels]).tolist():
        members_of[int(s.labels[local])].append(ids[int(s.org_idx[local])])
    found: list[HoldingCycle] = []
    for lab, members in members_of.items():
        names = tuple(sorted(members))
        fraction = {(a, b): f for a, b, f in edges_of[lab]}
        if len(names) == 1:
            found.append(HoldingCycle(names, (fraction[(names[0], names[0])],), names))
            continue
        G = nx.DiGraph()
        G.add_nodes_from(names)
        G.add_edges_from(sorted((a, b) for a, b in fraction if a != b))
        start = names[0]
        back = nx.single_source_shortest_path(G.reverse(copy=False), start)  # paths into `start`
        loops = [[start, *reversed(back[succ])][:-1] for succ in sorted(G.successors(start))]
        best = min(loops, key=lambda loop: (len(loop), loop))  # strongly connected: never empty
        found.append(HoldingCycle(tuple(best), tuple(fraction[(a, b)] for a, b in
                                                     zip(best, [*best[1:], best[0]], strict=True)), names))
    found.sort(key=lambda cyc: cyc.fingerprint)
    return found


def circular_holding_findings(cycles: Iterable[HoldingCycle], *, chain: str | None = None,
                              height: int | None = None, tx_ids: Sequence[str] = ()) -> list[Finding]:
    return [Finding("circular_holding", cyc.fingerprint, chain, height, tuple(tx_ids), cyc.members,
                    {"cycle": list(cyc.orgs), "fractions": [round(f, 6) for f in cyc.fractions],
                     "members": len(cyc.members)}) for cyc in cycles]


def subgraph_around(graph: OwnershipGraph, entity: str, depth: int = 3, max_nodes: int = 300) -> Drawing:
    """Nodes within `depth` holding links of `entity` (either direction), nearest first, for drawing."""
    i = graph.index.get(entity)
    if i is None:
        return {"nodes": [], "edges": [], "truncated": False}
    chosen: list[int] = []
    truncated = False
    for layer in _bfs((graph.W, graph.WT), np.array([i]), depth):
        room = max_nodes - len(chosen)
        ordered = sorted(layer.tolist(), key=lambda k: graph.ids[k])
        if len(ordered) > room:
            ordered, truncated = ordered[:room], True
        chosen += ordered
        if truncated:
            break
    nodes = np.array(sorted(chosen))
    sub = graph.W[nodes][:, nodes].tocoo()
    edges = sorted((DrawingEdge(source=graph.ids[nodes[a]], target=graph.ids[nodes[b]], weight=float(w))
                    for a, b, w in zip(sub.row.tolist(), sub.col.tolist(), sub.data.tolist(), strict=True)),
                   key=lambda e: (e["source"], e["target"]))
    return {"nodes": [DrawingNode(id=graph.ids[k], kind=graph.kind_of(graph.ids[k])) for k in chosen],
            "edges": edges, "truncated": truncated}
