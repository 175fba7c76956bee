"""The supervision chain (ECP/1 §6): anchoring accepted business blocks and sealing them.

- `anchors_create` turns accepted blocks into pending `Anchor` rows (called on commit of every
  accepted block); `anchors_sweep` finds accepted blocks that have no anchor (a crash between the
  commit and the receiver) and anchors them, so no block is ever left out.
- `supervision_block_seal` closes the next supervision block over the pending anchors, in id
  order, in one transaction that holds the `SupervisionHead` row lock: exactly one sealer wins,
  and a failure anywhere leaves nothing half-written.
- `Sealer` is the loop `manage.py run_sealer` runs: seal every `SEAL_INTERVAL_SECONDS` while
  anchors are pending, at once when `SEAL_MAX_PENDING` are, and the scheduled audit.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import DatabaseError, close_old_connections, connection, transaction
from django.db.models import Count, Exists, OuterRef, Subquery
from django.utils import timezone

from businesschain.models import Block, Chain
from businesschain.protocol import merkle
from businesschain.protocol.hashing import anchor_leaf_hash, compute_block_hash
from businesschain.protocol.schemas import GENESIS_PREV_HASH
from businesschain.protocol.times import format_time
from supervision import keys
from supervision.models import Anchor, SupervisionBlock, SupervisionHead

log = logging.getLogger(__name__)

#: How many missing anchors one sweep creates at most (the next sweep takes the rest).
SWEEP_BATCH = 50_000


class SealConflict(RuntimeError):
    """The anchors to seal changed under the sealer (should be impossible under the head lock)."""


@dataclass(frozen=True, slots=True)
class SealResult:
    height: int
    block_hash: str
    anchor_count: int
    anchor_root: str
    seconds: float


def supervision_header(*, height: int, prev_hash: str, timestamp: datetime, anchor_count: int,
                       anchor_root: str) -> dict[str, object]:
    """A supervision-block header exactly as hashed and signed (ECP/1 §6)."""
    return {
        "height": height,
        "prev_hash": prev_hash,
        "timestamp": format_time(timestamp),
        "anchor_count": anchor_count,
        "anchor_root": anchor_root,
    }


def anchor_leaf_hex(chain_id: str, height: int, block_hash: str) -> str:
    """Hex SM3(0x00 ‖ CJ({block_hash, chain, height})): what `Anchor.leaf_hash` stores."""
    return anchor_leaf_hash(chain_id, height, block_hash).hex()


# --- anchoring ----------------------------------------------------------------------------------

def anchors_create(*, chain_id: str, heights: Sequence[int], block_hashes: Sequence[str]) -> int:
    """Pending anchors for accepted blocks; blocks already anchored are skipped. Returns how many
    rows were offered (duplicates are ignored by the unique (chain, height) constraint)."""
    rows = [
        Anchor(chain_id=chain_id, height=height, block_hash=block_hash,
               leaf_hash=anchor_leaf_hex(chain_id, height, block_hash))
        for height, block_hash in zip(heights, block_hashes, strict=True)
    ]
    if rows:
        with transaction.atomic():
            Anchor.objects.bulk_create(rows, ignore_conflicts=True, batch_size=5_000)
    return len(rows)


def _anchor_blocks(blocks: Sequence[tuple[str, int, str]]) -> int:
    by_chain: dict[str, tuple[list[int], list[str]]] = {}
    for chain_id, height, block_hash in blocks:
        heights, hashes = by_chain.setdefault(chain_id, ([], []))
        heights.append(height)
        hashes.append(block_hash)
    return sum(anchors_create(chain_id=c, heights=h, block_hashes=b) for c, (h, b) in by_chain.items())


def anchors_sweep(*, full: bool = False) -> int:
    """Anchor accepted blocks that have no anchor yet; returns how many were found missing.

    The quick sweep compares each chain's head with its highest anchored height (one query, an
    index lookup per chain) and anchors the blocks above it. `full=True` also finds gaps below
    (a receiver that failed while a later one succeeded): chains whose anchor count differs from
    their block count get an anti-join.
    """
    latest = Anchor.objects.filter(chain_id=OuterRef("id")).order_by("-height").values("height")[:1]
    created = 0
    for chain_id, head_height, anchored in (
        Chain.objects.annotate(anchored=Subquery(latest)).values_list("id", "head_height", "anchored")
    ):
        top = -1 if anchored is None else anchored
        if head_height > top:
            blocks = list(
                Block.objects.filter(chain_id=chain_id, height__gt=top).order_by("height")
                .values_list("chain_id", "height", "block_hash")[:SWEEP_BATCH]
            )
            created += _anchor_blocks(blocks)
    if full:
        anchor_counts = dict(Anchor.objects.values("chain_id").annotate(n=Count("id"))
                             .values_list("chain_id", "n"))
        block_counts = dict(Block.objects.values("chain_id").annotate(n=Count("id"))
                            .values_list("chain_id", "n"))
        for chain_id, count in block_counts.items():
            if anchor_counts.get(chain_id, 0) >= count:
                continue
            anchored = Anchor.objects.filter(chain_id=OuterRef("chain_id"), height=OuterRef("height"))
            blocks = list(
                Block.objects.filter(chain_id=chain_id).filter(~Exists(anchored)).order_by("height")
                .values_list("chain_id", "height", "block_hash")[:SWEEP_BATCH]
            )
            created += _anchor_blocks(blocks)
    if created:
        log.info("anchored %d accepted blocks that had no anchor", created)
    return created


def pending_anchor_count(*, at_most: int | None = None) -> int:
    """Pending anchors, counted up to `at_most` (a bounded index scan, cheap on every tick)."""
    pending = Anchor.objects.filter(supervision_block__isnull=True)
    if at_most is None:
        return pending.count()
    return pending.order_by()[:at_most].count()


# --- sealing ------------------------------------------------------------------------------------

def _ensure_head() -> None:
    """The singleton lock row exists before anyone locks it (get_or_create survives the race)."""
    if not SupervisionHead.objects.filter(id=1).exists():
        SupervisionHead.objects.get_or_create(id=1)


def _now_ms() -> datetime:
    now = timezone.now()
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def supervision_block_seal(*, max_anchors: int | None = None, wait: bool = True,
                           now: datetime | None = None) -> SealResult | None:
    """Seal the next supervision block over up to `max_anchors` pending anchors (id order).

    Returns None when nothing is pending, or when `wait=False` and another sealer holds the head.
    Everything happens in one transaction under the `SupervisionHead` row lock, so concurrent
    sealers never seal an anchor twice and an exception anywhere leaves no trace.
    """
    started = time.perf_counter()
    limit = max_anchors or settings.SEAL_MAX_PENDING
    signing_key = keys.signing_key()
    _ensure_head()
    with transaction.atomic():
        locked = SupervisionHead.objects.select_for_update(nowait=False, skip_locked=not wait)
        head = locked.filter(id=1).first()
        if head is None:  # held by another sealer (skip_locked)
            return None
        pending = list(
            Anchor.objects.filter(supervision_block__isnull=True).order_by("id")
            .values_list("id", "leaf_hash")[:limit]
        )
        if not pending:
            return None
        anchor_ids = [row[0] for row in pending]
        leaf_hashes = [bytes.fromhex(row[1]) for row in pending]
        anchor_root = merkle.root_from_leaf_hashes(leaf_hashes).hex()
        chunk_roots = "".join(r.hex() for r in merkle.chunk_roots(leaf_hashes))
        timestamp = now or _now_ms()
        if head.sealed_at is not None and timestamp < head.sealed_at:
            timestamp = head.sealed_at  # never earlier than the previous block
        height = head.height + 1
        prev_hash = head.block_hash if head.height >= 0 else GENESIS_PREV_HASH
        header = supervision_header(height=height, prev_hash=prev_hash, timestamp=timestamp,
                                    anchor_count=len(pending), anchor_root=anchor_root)
        block_hash = compute_block_hash(header)
        signature = signing_key.sign(bytes.fromhex(block_hash))
        block = SupervisionBlock.objects.create(
            height=height, prev_hash=prev_hash, timestamp=timestamp, anchor_count=len(pending),
            anchor_root=anchor_root, block_hash=block_hash, signature=signature,
            key_id=signing_key.key_id, chunk_roots=chunk_roots,
        )
        updated = _assign_anchors(block.pk, anchor_ids)
        if updated != len(anchor_ids):
            raise SealConflict(f"expected to seal {len(anchor_ids)} anchors, updated {updated}")
        head.height, head.block_hash, head.sealed_at = height, block_hash, timestamp
        head.save(update_fields=["height", "block_hash", "sealed_at"])
    result = SealResult(height=height, block_hash=block_hash, anchor_count=len(pending),
                        anchor_root=anchor_root, seconds=time.perf_counter() - started)
    log.info("sealed supervision block %d with %d anchors in %.0f ms", height, len(pending),
             result.seconds * 1000)
    return result


def _assign_anchors(block_id: int, anchor_ids: Sequence[int]) -> int:
    """Point the anchors at their block with leaf_index = position, in one statement on PostgreSQL.
    Only still-pending rows are touched; the caller checks the count."""
    table = connection.ops.quote_name(Anchor._meta.db_table)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                f"UPDATE {table} AS a SET supervision_block_id = %s, leaf_index = u.ord - 1 "  # noqa: S608
                "FROM unnest(%s::bigint[]) WITH ORDINALITY AS u(id, ord) "
                "WHERE a.id = u.id AND a.supervision_block_id IS NULL",
                [block_id, list(anchor_ids)],
            )
            return int(cursor.rowcount)
        cursor.executemany(
            f"UPDATE {table} SET supervision_block_id = %s, leaf_index = %s "  # noqa: S608
            "WHERE id = %s AND supervision_block_id IS NULL",
            [(block_id, index, anchor_id) for index, anchor_id in enumerate(anchor_ids)],
        )
        return Anchor.objects.filter(supervision_block_id=block_id).count()


# --- the sealer loop ----------------------------------------------------------------------------

@dataclass
class Sealer:
    """What `manage.py run_sealer` runs until `stop` is set.

    Each tick (`tick` seconds): the quick anchor sweep, then a seal when `max_pending` anchors are
    pending or when anchors are pending and `interval` seconds have passed since the last seal.
    A full sweep runs at start and every `full_sweep_interval`; `on_audit_due` is called every
    `audit_interval` seconds (0 disables it).
    """

    interval: float
    max_pending: int
    audit_interval: float = 0.0
    on_audit_due: Callable[[], None] | None = None
    tick: float = 0.1
    full_sweep_interval: float = 600.0
    stop: threading.Event | None = None
    on_seal: Callable[[SealResult], None] | None = None

    def run(self) -> None:
        stop = self.stop or threading.Event()
        self.stop = stop
        last_seal = last_full_sweep = float("-inf")
        last_audit = self._last_scheduled_audit_clock()
        while not stop.is_set():
            now = time.monotonic()
            try:
                if self.audit_interval and self.on_audit_due and now - last_audit >= self.audit_interval:
                    last_audit = now
                    self.on_audit_due()
                full = now - last_full_sweep >= self.full_sweep_interval
                anchors_sweep(full=full)
                if full:
                    last_full_sweep = now
                pending = pending_anchor_count(at_most=self.max_pending)
                if pending >= self.max_pending or (pending and now - last_seal >= self.interval):
                    result = supervision_block_seal(max_anchors=self.max_pending, wait=False)
                    if result is not None:
                        last_seal = time.monotonic()
                        if self.on_seal:
                            self.on_seal(result)
                        if result.anchor_count >= self.max_pending:
                            continue  # a full block: more may be waiting, seal again at once
            except (DatabaseError, SealConflict):
                log.exception("sealer tick failed; retrying")
                close_old_connections()
                stop.wait(1.0)
            stop.wait(self.tick)

    def _last_scheduled_audit_clock(self) -> float:
        """Monotonic time of the last scheduled audit, so a restart does not audit at once."""
        from supervision.models import AuditRun

        try:
            started = (AuditRun.objects.filter(trigger=AuditRun.Trigger.SCHEDULED)
                       .order_by("-started_at").values_list("started_at", flat=True).first())
        except DatabaseError:
            return float("-inf")
        if started is None:
            return float("-inf")
        age = (timezone.now() - started) / timedelta(seconds=1)
        return time.monotonic() - max(age, 0.0)
