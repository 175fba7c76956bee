"""`audit_chains`: recompute every hash and signature from the stored rows and name any mismatch.

Business chains (ECP/1 §3–§4): every transaction id from its row, each block's transaction count
and indexes, `tx_root` over the stored tx ids, `block_hash` from the stored header columns, the
`prev_hash` links, and the node signatures against the node set the block was verified with.
Supervision chain (§6): every anchor's leaf hash and its agreement with the stored business block,
each block's anchor count, indexes and `anchor_root`, header hash, hash link and signature.

Speed comes from streaming rows in index order (transactions by `(block_id, index)`, anchors by
`(supervision_block_id, leaf_index)`), building the canonical bytes of a transaction by string
concatenation (the `body` column already is canonical JSON), and SM3 in OpenSSL. On PostgreSQL
the whole read is one REPEATABLE READ snapshot, so concurrent ingestion and sealing never show up
as false mismatches.
"""

from __future__ import annotations

import hashlib
import sys
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, TextIO

from django.core.exceptions import EmptyResultSet
from django.db import connection, transaction
from django.db.models import OuterRef, Subquery
from django.utils import timezone

from businesschain.models import Block, Chain, NodeSet, Transaction
from businesschain.protocol import merkle
from businesschain.protocol.hashing import anchor_leaf_hash, compute_block_hash, tx_canonical_json
from businesschain.registry import parsed_public_key
from businesschain.selectors import block_header
from gm import sm2
from supervision.anchoring import GENESIS_PREV_HASH, supervision_header
from supervision.models import Anchor, AuditRun, SupervisionBlock, SupervisionHead

#: Mismatches kept in the report and the AuditRun row by default (all are counted).
MAX_REPORTED = 1000
CHUNK = 5000


# --- results --------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Mismatch:
    """One thing that does not recompute. `chain` is a business chain id, or None for the
    supervision chain; `height` is the business block height; `supervision_height` the
    supervision block's."""

    what: str
    detail: str
    chain: str | None = None
    height: int | None = None
    tx_index: int | None = None
    tx_id: str | None = None
    supervision_height: int | None = None
    leaf_index: int | None = None

    def location(self) -> str:
        parts = []
        if self.chain is not None:
            parts.append(f"chain {self.chain} height {self.height}")
            if self.tx_index is not None:
                parts.append(f"tx {self.tx_index}" + (f" ({self.tx_id})" if self.tx_id else ""))
            if self.supervision_height is not None:
                parts.append(f"anchored in supervision block {self.supervision_height}"
                             + (f" leaf {self.leaf_index}" if self.leaf_index is not None else ""))
        else:
            parts.append(f"supervision chain height {self.supervision_height}")
            if self.leaf_index is not None:
                parts.append(f"leaf {self.leaf_index}")
        return ", ".join(parts)

    def __str__(self) -> str:
        return f"{self.location()}: {self.what}: {self.detail}"

    def as_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass(frozen=True)
class AuditScope:
    """What to audit. `chains` None = every business chain; `supervision` whether the supervision
    chain is audited; heights (inclusive) bound business blocks when `chains` is given, and the
    supervision chain when only it is audited."""

    chains: tuple[str, ...] | None = None
    supervision: bool = True
    business: bool = True
    height_from: int | None = None
    height_to: int | None = None

    @property
    def is_full(self) -> bool:
        return (self.chains is None and self.business and self.supervision
                and self.height_from is None and self.height_to is None)

    def as_json(self) -> dict[str, Any]:
        return {"chains": list(self.chains) if self.chains is not None else "all",
                "business": self.business, "supervision": self.supervision,
                "height_from": self.height_from, "height_to": self.height_to}


@dataclass
class AuditReport:
    scope: AuditScope
    started_at: datetime
    finished_at: datetime | None = None
    seconds: float = 0.0
    blocks: int = 0
    transactions: int = 0
    anchors: int = 0
    supervision_blocks: int = 0
    mismatch_count: int = 0
    mismatches: list[Mismatch] = field(default_factory=list)
    run_id: int | None = None
    max_reported: int = MAX_REPORTED

    @property
    def ok(self) -> bool:
        return self.mismatch_count == 0

    def add(self, mismatch: Mismatch) -> None:
        self.mismatch_count += 1
        if len(self.mismatches) < self.max_reported:
            self.mismatches.append(mismatch)

    def summary(self) -> str:
        rate = self.transactions / self.seconds if self.seconds else 0.0
        verdict = "OK" if self.ok else f"{self.mismatch_count} MISMATCH(ES)"
        return (f"{verdict}: {self.blocks:,} blocks, {self.transactions:,} transactions, "
                f"{self.anchors:,} anchors, {self.supervision_blocks:,} supervision blocks "
                f"in {self.seconds:.2f} s ({rate:,.0f} tx/s)")


# --- progress -------------------------------------------------------------------------------------

class ProgressBar:
    """A one-line text progress bar (stderr by default), redrawn at most every `every` seconds."""

    def __init__(self, stream: TextIO | None = None, width: int = 30, every: float = 0.2) -> None:
        self.stream = stream or sys.stderr
        self.width, self.every = width, every
        self.label, self.total, self.done = "", 0, 0
        self._last = 0.0
        self._started = time.perf_counter()

    def phase(self, label: str, total: int) -> None:
        if self.label:
            self._draw(force=True)
            self.stream.write("\n")
        self.label, self.total, self.done = label, total, 0
        self._started = time.perf_counter()
        self._draw(force=True)

    def advance(self, count: int) -> None:
        self.done += count
        self._draw()

    def close(self) -> None:
        if self.label:
            self._draw(force=True)
            self.stream.write("\n")
            self.stream.flush()
            self.label = ""

    def _draw(self, force: bool = False) -> None:
        now = time.perf_counter()
        if not force and now - self._last < self.every:
            return
        self._last = now
        fraction = min(self.done / self.total, 1.0) if self.total else 1.0
        filled = int(fraction * self.width)
        rate = self.done / max(now - self._started, 1e-9)
        self.stream.write(f"\r{self.label:<22} [{'#' * filled}{'.' * (self.width - filled)}] "
                          f"{fraction:6.1%} {self.done:,}/{self.total:,} ({rate:,.0f}/s)")
        self.stream.flush()


class _NoProgress:
    def phase(self, label: str, total: int) -> None: ...
    def advance(self, count: int) -> None: ...
    def close(self) -> None: ...


# --- fast recomputation ---------------------------------------------------------------------------

_sm3 = hashlib.new("sm3").copy  # a fresh, empty SM3 context (copy of the seed is cheapest)


def _hex32(text: str) -> bytes | None:
    try:
        raw = bytes.fromhex(text)
    except (TypeError, ValueError):
        return None
    return raw if len(raw) == 32 else None


def _short(text: object) -> str:
    value = str(text)
    return value if len(value) <= 24 else value[:20] + "…"


def _differs(stored: object, recomputed: object) -> str:
    return f"stored {stored}, recomputed {recomputed}"


def _raw_rows(queryset: Any, chunk: int = CHUNK) -> Generator[tuple[Any, ...], None, None]:
    """The rows of a values_list queryset straight from a server-side cursor (PostgreSQL) or a
    plain one, without Django's per-row machinery. Only for columns needing no converters."""
    try:
        sql, params = queryset.query.sql_with_params()
    except EmptyResultSet:  # a .none() queryset
        return
    with connection.chunked_cursor() as cursor:
        cursor.execute(sql, params)
        while rows := cursor.fetchmany(chunk):
            yield from rows


# --- signatures (in a worker thread: libcrypto releases the GIL) ---------------------------------

_NodeSets = dict[int, tuple[int, dict[str, sm2.SM2PublicKey]]]


def _node_sets() -> _NodeSets:
    out: _NodeSets = {}
    for node_set in NodeSet.objects.prefetch_related("nodes"):
        out[node_set.pk] = (node_set.quorum,
                            {n.node_id: parsed_public_key(n.public_key) for n in node_set.nodes.all()})
    return out


def block_signature_problems(block_hash: str, signatures: Sequence[Any], quorum: int,
                             nodes: dict[str, sm2.SM2PublicKey]) -> list[tuple[str, str]]:
    """ECP/1 §4 signature rule re-run on stored data: [(what, detail)], empty when valid."""
    message = _hex32(block_hash)
    if message is None:
        return [("signature", "block_hash is not 32 bytes of hex, nothing to verify")]
    problems: list[tuple[str, str]] = []
    valid: set[str] = set()
    for index, entry in enumerate(signatures if isinstance(signatures, list) else []):
        node = entry.get("node") if isinstance(entry, dict) else None
        key = nodes.get(node) if isinstance(node, str) else None
        if key is None:
            continue  # unknown nodes are ignored (§4)
        try:
            sig = bytes.fromhex(str(entry.get("sig", "")))
        except ValueError:
            sig = b""
        if key.verify(message, sig):
            valid.add(str(node))
        else:
            problems.append(("signature", f"signatures[{index}] by node {node} does not verify"))
    if len(valid) < quorum:
        problems.append(("quorum", f"{len(valid)} distinct registered nodes signed validly; "
                                   f"quorum is {quorum}"))
    return problems


# --- the audit ------------------------------------------------------------------------------------

@contextmanager
def _snapshot() -> Iterator[None]:
    """One consistent read view: REPEATABLE READ READ ONLY on PostgreSQL. SQLite serialises
    writers, and the streams are bounded by the ids seen at the start, so it needs none."""
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        yield  # inside a caller's transaction (tests): its snapshot rules apply
        return
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        yield


class _Auditor:
    def __init__(self, scope: AuditScope, report: AuditReport, progress: Any) -> None:
        self.scope, self.report, self.progress = scope, report, progress
        self.max_block_id = Block.objects.order_by("-id").values_list("id", flat=True).first() or 0
        self.max_sblock_id = (SupervisionBlock.objects.order_by("-id").values_list("id", flat=True)
                              .first() or 0)

    def add(self, **kwargs: Any) -> None:
        self.report.add(Mismatch(**kwargs))

    # --- business chains ----------------------------------------------------------------------

    def business(self) -> None:
        scope = self.scope
        ranged = scope.height_from is not None or scope.height_to is not None
        blocks = Block.objects.filter(id__lte=self.max_block_id)
        txs = Transaction.objects.filter(block_id__lte=self.max_block_id)
        if scope.chains is not None:
            blocks = blocks.filter(chain_id__in=scope.chains)
            txs = txs.filter(chain_id__in=scope.chains)
        if scope.height_from is not None:
            blocks = blocks.filter(height__gte=scope.height_from)
        if scope.height_to is not None:
            blocks = blocks.filter(height__lte=scope.height_to)
        if ranged:
            bounds = blocks.order_by("id").values_list("id", flat=True)
            low, high = bounds.first(), bounds.last()
            txs = txs.none() if low is None or high is None else txs.filter(block_id__gte=low,
                                                                              block_id__lte=high)
        report_orphans = scope.chains is None and not ranged
        self.progress.phase("transactions", txs.count())
        node_sets = _node_sets()
        previous = self._predecessors()
        last_seen: dict[str, tuple[int, str]] = dict(previous)
        tx_rows = _raw_rows(txs.order_by("block_id", "index").values_list(
            "block_id", "index", "tx_id", "type", "nonce", "body", "chain_id", "height"))
        block_rows = (blocks.order_by("id")
                      .only("id", "chain_id", "height", "block_hash", "prev_hash", "timestamp", "tx_count",
                            "tx_root", "signatures", "node_set_id")
                      .iterator(chunk_size=1000))
        row: tuple[Any, ...] | None = next(tx_rows, None)
        verifier = ThreadPoolExecutor(max_workers=1, thread_name_prefix="audit-sig")
        checks: list[tuple[Block, Future[list[tuple[str, str]]]]] = []
        new_sm3, tx_cj = _sm3, tx_canonical_json
        try:
            for block in block_rows:
                block_id, chain_id, height = block.pk, block.chain_id, block.height
                while row is not None and row[0] < block_id:  # rows of blocks outside the audit
                    if report_orphans:
                        self._orphan(row)
                    row = next(tx_rows, None)
                stored_ids: list[bytes] = []
                append = stored_ids.append
                expected_index = 0
                # The hot loop: one SM3 per transaction over CJ built by concatenation.
                while row is not None and row[0] == block_id:
                    _, index, tx_id, type_, nonce, body, tx_chain, tx_height = row
                    h = new_sm3()
                    h.update(tx_cj(type_, nonce, body))
                    digest = h.digest()
                    if digest.hex() == tx_id:
                        append(digest)
                    else:
                        self.add(what="tx_id", chain=chain_id, height=height, tx_index=index, tx_id=tx_id,
                                 detail=_differs(tx_id, digest.hex()))
                        append(_hex32(tx_id) or digest)
                    if index != expected_index or tx_chain != chain_id or tx_height != height:
                        self._tx_place(chain_id, height, expected_index, row)
                    expected_index = index + 1
                    row = next(tx_rows, None)
                count = len(stored_ids)
                self.report.transactions += count
                self.report.blocks += 1
                self.progress.advance(count)
                self._check_block(block, stored_ids, last_seen)
                quorum, nodes = node_sets.get(block.node_set_id, (1, {}))
                checks.append((block, verifier.submit(block_signature_problems, block.block_hash,
                                                      block.signatures, quorum, nodes)))
                if len(checks) >= 256:
                    self._drain(checks, keep=64)
            self._drain(checks, keep=0)
            while row is not None:
                if report_orphans:
                    self._orphan(row)
                row = next(tx_rows, None)
        finally:
            verifier.shutdown(wait=True, cancel_futures=True)
            tx_rows.close()
        self._check_heads(last_seen)

    def _orphan(self, row: tuple[Any, ...]) -> None:
        self.add(what="orphan_transaction", chain=row[6], height=row[7], tx_index=row[1], tx_id=row[2],
                 detail=f"stored under block id {row[0]}, which is not a stored block")

    def _tx_place(self, chain_id: str, height: int, expected_index: int, row: tuple[Any, ...]) -> None:
        _, index, tx_id, _, _, _, tx_chain, tx_height = row
        if index != expected_index:
            self.add(what="tx_index", chain=chain_id, height=height, tx_index=index, tx_id=tx_id,
                     detail=f"expected index {expected_index}")
        if tx_chain != chain_id or tx_height != height:
            self.add(what="tx_location", chain=chain_id, height=height, tx_index=index, tx_id=tx_id,
                     detail=f"row says chain {tx_chain} height {tx_height}")

    def _drain(self, checks: list[tuple[Block, Future[list[tuple[str, str]]]]], keep: int) -> None:
        while len(checks) > keep:
            block, future = checks.pop(0)
            for what, detail in future.result():
                self.add(what=what, chain=block.chain_id, height=block.height, detail=detail)

    def _predecessors(self) -> dict[str, tuple[int, str]]:
        """For a height range, the block just below it on each chain (to check the first link)."""
        scope = self.scope
        if not scope.height_from:
            return {}
        rows = Block.objects.filter(height=scope.height_from - 1)
        if scope.chains is not None:
            rows = rows.filter(chain_id__in=scope.chains)
        return {c: (h, bh) for c, h, bh in rows.values_list("chain_id", "height", "block_hash")}

    def _check_block(self, block: Block, stored_ids: list[bytes],
                     last_seen: dict[str, tuple[int, str]]) -> None:
        chain_id, height = block.chain_id, block.height
        if len(stored_ids) != block.tx_count:
            self.add(what="tx_count", chain=chain_id, height=height,
                     detail=f"header says {block.tx_count}, {len(stored_ids)} transactions stored")
        root = merkle.root(stored_ids).hex()
        if root != block.tx_root:
            self.add(what="tx_root", chain=chain_id, height=height, detail=_differs(block.tx_root, root))
        recomputed = compute_block_hash(block_header(block))
        if recomputed != block.block_hash:
            self.add(what="block_hash", chain=chain_id, height=height,
                     detail=_differs(block.block_hash, recomputed))
        previous = last_seen.get(chain_id)
        if previous is None:
            if height == 0 and block.prev_hash != GENESIS_PREV_HASH:
                self.add(what="prev_hash", chain=chain_id, height=height,
                         detail=f"genesis prev_hash is {block.prev_hash}, not 64 zeros")
            elif height > 0 and self.scope.height_from is None:
                self.add(what="missing_block", chain=chain_id, height=height,
                         detail=f"the chain starts at height {height}; heights 0..{height - 1} are missing")
        elif height != previous[0] + 1:
            self.add(what="missing_block", chain=chain_id, height=height,
                     detail=f"follows height {previous[0]}: heights in between are missing")
        elif block.prev_hash != previous[1]:
            self.add(what="prev_hash", chain=chain_id, height=height,
                     detail=f"{block.prev_hash} does not link to height {previous[0]} ({previous[1]})")
        last_seen[chain_id] = (height, block.block_hash)

    def _check_heads(self, last_seen: dict[str, tuple[int, str]]) -> None:
        if self.scope.height_to is not None:
            return
        chains = Chain.objects.all()
        if self.scope.chains is not None:
            chains = chains.filter(id__in=self.scope.chains)
        for chain in chains:
            seen = last_seen.get(chain.id)
            if seen is None:
                if chain.head_height >= 0 and self.scope.height_from is None:
                    self.add(what="chain_head", chain=chain.id, height=chain.head_height,
                             detail="the chain's head names a block that is not stored")
                continue
            if seen[0] < chain.head_height and Block.objects.filter(chain_id=chain.id, height=seen[0] + 1,
                                                                   id__gt=self.max_block_id).exists():
                continue  # accepted after the audit's bound (SQLite: no snapshot)
            if (chain.head_height, chain.head_hash) != seen:
                self.add(what="chain_head", chain=chain.id, height=chain.head_height,
                         detail=f"head is {chain.head_height}/{chain.head_hash}, last stored block is "
                                f"{seen[0]}/{seen[1]}")

    # --- anchors and the supervision chain -----------------------------------------------------

    def _anchor_rows(self, anchors: Any) -> Iterator[tuple[Any, ...]]:
        stored = Block.objects.filter(chain_id=OuterRef("chain_id"), height=OuterRef("height"))
        annotated = anchors.annotate(stored_hash=Subquery(stored.values("block_hash")[:1]))
        return _raw_rows(annotated.values_list(
            "supervision_block_id", "leaf_index", "chain_id", "height", "block_hash", "leaf_hash",
            "stored_hash", "supervision_block__height"))

    def _check_anchor(self, row: tuple[Any, ...]) -> bytes:
        """Leaf hash and agreement with the stored business block; returns the stored leaf hash."""
        _, leaf_index, chain_id, height, block_hash, leaf_hash, stored_hash, s_height = row
        digest = anchor_leaf_hash(chain_id, height, block_hash)
        raw = _hex32(leaf_hash)
        where = {"chain": chain_id, "height": height, "supervision_height": s_height,
                 "leaf_index": leaf_index}
        if raw != digest:
            self.add(what="anchor_leaf_hash", detail=_differs(leaf_hash, digest.hex()), **where)
        if stored_hash is None:
            self.add(what="anchor_block", detail="anchors a block that is not stored", **where)
        elif stored_hash != block_hash:
            self.add(what="anchor_block_hash",
                     detail=f"anchor says {block_hash}, stored block has {stored_hash}", **where)
        self.report.anchors += 1
        return raw if raw is not None else digest

    def business_anchors(self) -> None:
        """Anchors of the audited chains and heights (when the supervision chain is not audited)."""
        anchors = Anchor.objects.filter(chain_id__in=self.scope.chains or ())
        if self.scope.height_from is not None:
            anchors = anchors.filter(height__gte=self.scope.height_from)
        if self.scope.height_to is not None:
            anchors = anchors.filter(height__lte=self.scope.height_to)
        self.progress.phase("anchors", anchors.count())
        for row in self._anchor_rows(anchors.order_by("id")):
            self._check_anchor(row)
            self.progress.advance(1)

    def supervision(self) -> None:
        scope = self.scope
        ranged = not scope.business and (scope.height_from is not None or scope.height_to is not None)
        sblocks = SupervisionBlock.objects.select_related("key").filter(id__lte=self.max_sblock_id)
        if ranged and scope.height_from is not None:
            sblocks = sblocks.filter(height__gte=scope.height_from)
        if ranged and scope.height_to is not None:
            sblocks = sblocks.filter(height__lte=scope.height_to)
        bounds = sblocks.order_by("id").values_list("id", flat=True)
        low, high = bounds.first(), bounds.last()
        sealed = Anchor.objects.none() if low is None or high is None else Anchor.objects.filter(
            supervision_block_id__gte=low, supervision_block_id__lte=high)
        pending = Anchor.objects.filter(supervision_block__isnull=True)
        if ranged or scope.chains is not None:
            pending = Anchor.objects.none()
        self.progress.phase("anchors", sealed.count() + pending.count())
        anchor_rows = self._anchor_rows(sealed.order_by("supervision_block_id", "leaf_index"))
        pending_row: tuple[Any, ...] | None = next(anchor_rows, None)
        previous: tuple[int, str] | None = None
        if ranged and scope.height_from:
            row = (SupervisionBlock.objects.filter(height=scope.height_from - 1)
                   .values_list("height", "block_hash").first())
            previous = (row[0], row[1]) if row else None
        keys: dict[str, sm2.SM2PublicKey | None] = {}
        for block in sblocks.order_by("id").iterator(chunk_size=500):
            while pending_row is not None and pending_row[0] < block.pk:
                pending_row = next(anchor_rows, None)  # cannot happen: bounded by the same ids
            leaves: list[bytes] = []
            while pending_row is not None and pending_row[0] == block.pk:
                if pending_row[1] != len(leaves):
                    self.add(what="leaf_index", chain=None, supervision_height=block.height,
                             leaf_index=pending_row[1], detail=f"expected leaf index {len(leaves)}")
                leaves.append(self._check_anchor(pending_row))
                pending_row = next(anchor_rows, None)
            self.progress.advance(len(leaves))
            self._check_supervision_block(block, leaves, previous, keys)
            previous = (block.height, block.block_hash)
            self.report.supervision_blocks += 1
        for row in self._anchor_rows(pending.order_by("id")):
            self._check_anchor(row)
            self.progress.advance(1)
        if not ranged:
            head = SupervisionHead.objects.filter(id=1).values_list("height", "block_hash").first()
            if previous is not None and head is not None and head[0] <= previous[0] and head != previous:
                self.add(what="supervision_head", chain=None, supervision_height=head[0],
                         detail=f"head row says {head[0]}/{head[1]}, "
                                f"last block is {previous[0]}/{previous[1]}")

    def _check_supervision_block(self, block: SupervisionBlock, leaves: list[bytes],
                                 previous: tuple[int, str] | None,
                                 keys: dict[str, sm2.SM2PublicKey | None]) -> None:
        where: dict[str, Any] = {"chain": None, "supervision_height": block.height}
        if len(leaves) != block.anchor_count:
            self.add(what="anchor_count",
                     detail=f"header says {block.anchor_count}, {len(leaves)} anchors stored", **where)
        root = merkle.root_from_leaf_hashes(leaves).hex()
        if root != block.anchor_root:
            self.add(what="anchor_root", detail=_differs(block.anchor_root, root), **where)
        # Derived and unsigned: a bad or missing copy would hand out failing receipts. Checked only
        # when the leaves match the signed root, or one edited leaf would be reported twice.
        if root == block.anchor_root:
            chunks = "".join(r.hex() for r in merkle.chunk_roots(leaves))
            if chunks != block.chunk_roots:
                self.add(what="chunk_roots", **where,
                         detail="stored chunk roots differ from the anchors" if block.chunk_roots
                         else "no chunk roots stored")
        header = supervision_header(height=block.height, prev_hash=block.prev_hash,
                                    timestamp=block.timestamp, anchor_count=block.anchor_count,
                                    anchor_root=block.anchor_root)
        recomputed = compute_block_hash(header)
        if recomputed != block.block_hash:
            self.add(what="supervision_hash", detail=_differs(block.block_hash, recomputed), **where)
        if previous is None:
            if block.height == 0 and block.prev_hash != GENESIS_PREV_HASH:
                self.add(what="supervision_prev_hash", detail="genesis prev_hash is not 64 zeros", **where)
            elif block.height > 0 and (self.scope.business or not self.scope.height_from):
                self.add(what="missing_supervision_block",
                         detail=f"the chain starts at height {block.height}", **where)
        elif block.height != previous[0] + 1:
            self.add(what="missing_supervision_block",
                     detail=f"follows height {previous[0]}: heights in between are missing", **where)
        elif block.prev_hash != previous[1]:
            self.add(what="supervision_prev_hash",
                     detail=f"{block.prev_hash} does not link to height {previous[0]} ({previous[1]})",
                     **where)
        public_hex = block.key.public_key
        if public_hex not in keys:
            try:
                keys[public_hex] = sm2.SM2PublicKey.from_hex(public_hex)
            except ValueError:
                keys[public_hex] = None
        key = keys[public_hex]
        message = _hex32(block.block_hash)
        try:
            signature = bytes.fromhex(block.signature)
        except ValueError:
            signature = b""
        if key is None or message is None or not key.verify(message, signature):
            self.add(what="supervision_signature",
                     detail=f"signature does not verify with key {block.key.fingerprint[:16]}…", **where)

    def run(self) -> None:
        scope = self.scope
        if scope.business:
            self.business()
        if scope.supervision:
            self.supervision()
        elif scope.business and scope.chains is not None:
            self.business_anchors()


def audit_chains(*, scope: AuditScope | None = None, trigger: str = AuditRun.Trigger.MANUAL,
                 record: bool = True, progress: ProgressBar | None = None,
                 on_mismatch: Callable[[Mismatch], None] | None = None,
                 max_reported: int = MAX_REPORTED) -> AuditReport:
    """Run the audit over `scope` (everything by default); record an `AuditRun` unless `record`
    is False. Never raises for mismatches: they are in the report, every one counted in
    `mismatch_count` and the first `max_reported` kept in `mismatches` (and the run's row)."""
    scope = scope or AuditScope()
    report = AuditReport(scope=scope, started_at=timezone.now(), max_reported=max_reported)
    run: AuditRun | None = None
    if record:
        run = AuditRun.objects.create(started_at=report.started_at, trigger=trigger, scope=scope.as_json())
        report.run_id = run.pk
    bar: Any = progress or _NoProgress()
    started = time.perf_counter()
    try:
        with _snapshot():
            _Auditor(scope, report, bar).run()
    finally:
        bar.close()
        report.seconds = time.perf_counter() - started
        report.finished_at = timezone.now()
    if on_mismatch is not None:
        for mismatch in report.mismatches:
            on_mismatch(mismatch)
    if run is not None:
        run.finished_at = report.finished_at
        run.ok = report.ok
        run.blocks_checked = report.blocks
        run.transactions_checked = report.transactions
        run.anchors_checked = report.anchors
        run.supervision_blocks_checked = report.supervision_blocks
        run.mismatch_count = report.mismatch_count
        run.mismatches = [m.as_json() for m in report.mismatches]
        run.save(update_fields=["finished_at", "ok", "blocks_checked", "transactions_checked",
                                "anchors_checked", "supervision_blocks_checked", "mismatch_count",
                                "mismatches"])
    return report


def scheduled_audit_due(*, interval_seconds: float) -> bool:
    """Whether no scheduled audit started within the last `interval_seconds` / 2 (several sealers
    may ask; the first one's run makes the others skip)."""
    last = (AuditRun.objects.filter(trigger=AuditRun.Trigger.SCHEDULED).order_by("-started_at")
            .values_list("started_at", flat=True).first())
    return last is None or (timezone.now() - last).total_seconds() >= interval_seconds / 2

