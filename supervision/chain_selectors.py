"""Reads of the supervision chain: receipts (ECP/1 §6), supervision blocks, the explorer's anchor
status, and the dashboard's summary.

A receipt's Merkle tree is the anchor tree of one supervision block (at most `SEAL_MAX_PENDING`
leaves). Its audit path comes from the block's stored chunk roots (written at seal time; migration
0004 filled them in for older blocks) and the leaf hashes of the one `CHUNK_LEAVES`-leaf run that
holds the anchor, so answering costs the same whether a thousand or a million anchors are stored
and no whole tree is ever built.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Sum
from django.utils import timezone

from businesschain import selectors
from businesschain.errors import DomainError, NotFound, PermissionDenied
from businesschain.models import Block
from businesschain.protocol import merkle
from supervision.anchoring import supervision_header
from supervision.models import Anchor, AuditRun, SupervisionBlock, SupervisorKey

_HASH_RE = re.compile(r"[0-9a-f]{64}")


def supervision_block_json(block: SupervisionBlock) -> dict[str, Any]:
    """`{"header", "hash", "signature", "public_key"}` exactly as ECP/1 §6 shapes it."""
    return {
        "header": supervision_header(height=block.height, prev_hash=block.prev_hash,
                                     timestamp=block.timestamp, anchor_count=block.anchor_count,
                                     anchor_root=block.anchor_root),
        "hash": block.block_hash,
        "signature": block.signature,
        "public_key": block.key.public_key,
    }


def supervision_block_get(*, height: int) -> SupervisionBlock:
    block = SupervisionBlock.objects.select_related("key").filter(height=height).first()
    if block is None:
        raise NotFound(f"No supervision block at height {height}.", code="unknown_block")
    return block


def supervision_head_get() -> SupervisionBlock:
    block = SupervisionBlock.objects.select_related("key").order_by("-height").first()
    if block is None:
        raise NotFound("No supervision block has been sealed yet.", code="unknown_block")
    return block


# --- receipts -------------------------------------------------------------------------------------

def _find_anchor(block_hash: str, chain_id: str | None) -> Anchor | None:
    """The anchor of `block_hash` (the oldest if several chains share the hash), with its
    supervision block and key. A chain reads only its own: PermissionDenied if the hash is known
    only on another chain. No ORDER BY … LIMIT: that tempts the planner into a primary-key scan."""
    anchors = sorted(Anchor.objects.select_related("supervision_block__key").filter(block_hash=block_hash),
                     key=lambda a: a.pk)
    if chain_id is None:
        return anchors[0] if anchors else None
    own = [a for a in anchors if a.chain_id == chain_id]
    if own:
        return own[0]
    if Block.objects.filter(chain_id=chain_id, block_hash=block_hash).exists():
        return None  # accepted, anchor not created yet: pending
    if anchors or Block.objects.filter(block_hash=block_hash).exists():
        raise PermissionDenied("A chain may read only the receipts of its own blocks.")
    raise NotFound(f"No accepted block has hash {block_hash!r}.", code="unknown_block")


def receipt_get(*, block_hash: str, chain_id: str | None = None) -> dict[str, Any] | None:
    """ECP/1 §6 receipt of the accepted block `block_hash`, or None while it is not sealed.

    `chain_id` restricts the answer to that chain's blocks (a chain's own token).
    Raises NotFound for unknown hashes and PermissionDenied for another chain's block.
    """
    block_hash = block_hash.lower()
    if not _HASH_RE.fullmatch(block_hash):
        raise NotFound("A block hash is 64 hex digits.", code="unknown_block")
    anchor = _find_anchor(block_hash, chain_id)
    if anchor is None:
        if chain_id is None and not Block.objects.filter(block_hash=block_hash).exists():
            raise NotFound(f"No accepted block has hash {block_hash!r}.", code="unknown_block")
        return None
    sealed = anchor.supervision_block
    if sealed is None or anchor.leaf_index is None:
        return None
    return {
        "chain": anchor.chain_id,
        "height": anchor.height,
        "block_hash": anchor.block_hash,
        "leaf_index": anchor.leaf_index,
        "tree_size": sealed.anchor_count,
        "audit_path": [node.hex() for node in _audit_path(sealed, anchor.leaf_index)],
        "supervision_block": supervision_block_json(sealed),
    }


def _audit_path(sealed: SupervisionBlock, leaf_index: int) -> list[bytes]:
    """From the stored chunk roots and the leaf hashes of the anchor's own chunk: one read of at
    most `CHUNK_LEAVES` rows. A block of one chunk needs no stored roots (its chunk is the tree)."""
    try:
        raw = bytes.fromhex(sealed.chunk_roots)
    except ValueError:
        raw = b""
    roots = [raw[i:i + merkle.HASH_SIZE] for i in range(0, len(raw), merkle.HASH_SIZE)]
    chunks = -(-sealed.anchor_count // merkle.CHUNK_LEAVES)
    if chunks > 1 and (len(raw) % merkle.HASH_SIZE or len(roots) != chunks):
        raise DomainError(
            f"Supervision block {sealed.height} has no usable chunk roots ({len(roots)} stored for "
            f"{chunks} chunks of anchors): blocks sealed before they were stored get them from "
            "`manage.py migrate` (supervision 0004); otherwise the row was altered "
            "(`manage.py audit_chains --supervision` names it).",
            code="chunk_roots_missing", status=500,
        )
    start = leaf_index - leaf_index % merkle.CHUNK_LEAVES
    chunk = [bytes.fromhex(h) for h in Anchor.objects.filter(
        supervision_block_id=sealed.pk, leaf_index__gte=start, leaf_index__lt=start + merkle.CHUNK_LEAVES,
    ).order_by("leaf_index").values_list("leaf_hash", flat=True)]
    return merkle.inclusion_proof_chunked(leaf_index, chunk, roots if chunks > 1 else [])


def receipt_url(block_hash: str) -> str:
    return f"/api/v1/receipts/{block_hash}"


# --- the block explorer ---------------------------------------------------------------------------

def anchor_status(*, chain_id: str, height: int) -> dict[str, Any] | None:
    """The explorer's view of a business block's anchor, or None when it has none yet."""
    row = (Anchor.objects.filter(chain_id=chain_id, height=height)
           .values("block_hash", "leaf_index", "supervision_block__height").first())
    if row is None:
        return None
    sealed = row["supervision_block__height"] is not None
    return {
        "status": "sealed" if sealed else "pending",
        "leaf_index": row["leaf_index"],
        "supervision_height": row["supervision_block__height"],
        "receipt": receipt_url(row["block_hash"]),
    }


def chain_block_detail(*, chain_id: str, height: int) -> dict[str, Any]:
    """ECP/1 §5 `GET chains/{chain}/blocks/{height}`: the stored block, its verification record
    and its anchor."""
    block = selectors.block_get(chain_id=chain_id, height=height)
    return {**selectors.block_detail(block), "anchor": anchor_status(chain_id=chain_id, height=height)}


# --- the dashboard --------------------------------------------------------------------------------

def _age_seconds(moment: datetime | None, now: datetime) -> float | None:
    return None if moment is None else max((now - moment).total_seconds(), 0.0)


def audit_run_json(run: AuditRun, *, mismatches: int = 5) -> dict[str, Any]:
    return {
        "id": run.pk,
        "ok": run.ok,
        "running": run.finished_at is None,
        "trigger": run.trigger,
        "scope": run.scope,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "blocks_checked": run.blocks_checked,
        "transactions_checked": run.transactions_checked,
        "anchors_checked": run.anchors_checked,
        "supervision_blocks_checked": run.supervision_blocks_checked,
        "mismatch_count": run.mismatch_count,
        "mismatches": run.mismatches[:mismatches],
    }


def supervision_status(*, now: datetime | None = None) -> dict[str, Any]:
    """What the dashboard shows about the supervision chain: head, seal rate over the last hour,
    pending anchors, the signing key and the last audit. Bounded queries (index scans)."""
    now = now or timezone.now()
    head_block = (SupervisionBlock.objects.order_by("-height")
                  .values("height", "block_hash", "timestamp", "anchor_count").first())
    hour_ago = now - timedelta(hours=1)
    blocks_last_hour = anchors_last_hour = 0
    if head_block is not None:
        # Blocks are sealed in height order with non-decreasing timestamps: the last block older
        # than an hour bounds the window, found by a backward scan of the height index.
        before = (SupervisionBlock.objects.filter(timestamp__lt=hour_ago).order_by("-height")
                  .values_list("height", flat=True).first())
        start = -1 if before is None else before
        blocks_last_hour = head_block["height"] - start
        anchors_last_hour = (SupervisionBlock.objects.filter(height__gt=start)
                             .aggregate(n=Sum("anchor_count"))["n"] or 0)
    pending = Anchor.objects.filter(supervision_block__isnull=True)
    oldest = pending.order_by("id").values_list("created_at", flat=True).first()
    key = SupervisorKey.objects.filter(retired_at__isnull=True).order_by("-created_at").first()
    last_audit = AuditRun.objects.order_by("-started_at", "-id").first()
    return {
        "head": None if head_block is None else {
            "height": head_block["height"],
            "block_hash": head_block["block_hash"],
            "timestamp": head_block["timestamp"],
            "anchor_count": head_block["anchor_count"],
            "age_seconds": _age_seconds(head_block["timestamp"], now),
        },
        "blocks_last_hour": blocks_last_hour,
        "anchors_last_hour": anchors_last_hour,
        "seal_rate_per_minute": round(blocks_last_hour / 60, 2),
        "anchor_rate_per_second": round(anchors_last_hour / 3600, 2),
        "pending_anchors": pending.count(),
        "oldest_pending_age_seconds": _age_seconds(oldest, now),
        "key_fingerprint": key.fingerprint if key else None,
        "last_audit": audit_run_json(last_audit) if last_audit else None,
    }
