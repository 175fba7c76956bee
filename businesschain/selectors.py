"""Reads over business chains, blocks and transactions, shaped as the API answers them."""

from __future__ import annotations

import json
from typing import Any

from django.db.models import QuerySet

from businesschain.errors import NotFound
from businesschain.models import Block, Chain, NodeSet, RejectedSubmission, Transaction
from businesschain.protocol.builder import format_time


def chain_get(*, chain_id: str) -> Chain:
    chain = Chain.objects.filter(id=chain_id).first()
    if chain is None:
        raise NotFound(f"Chain {chain_id!r} is not registered.", code="unknown_chain")
    return chain


def chain_summary(chain: Chain) -> dict[str, Any]:
    """ECP/1 §5 `GET chains/{chain}`."""
    node_set = NodeSet.objects.filter(chain=chain).order_by("-version").prefetch_related("nodes").first()
    nodes = ([{"node": n.node_id, "public_key": n.public_key} for n in node_set.nodes.all()]
             if node_set else [])
    return {
        "chain": chain.id,
        "name": chain.name,
        "height": chain.head_height,
        "head_hash": chain.head_hash or None,
        "next_height": chain.next_height,
        "quorum": node_set.quorum if node_set else None,
        "nodes": nodes,
        "node_set_version": node_set.version if node_set else None,
        "status": chain.status,
        "last_block_at": format_time(chain.last_block_at) if chain.last_block_at else None,
    }


def chain_list() -> list[dict[str, Any]]:
    return [chain_summary(c) for c in Chain.objects.order_by("id")]


def block_get(*, chain_id: str, height: int) -> Block:
    block = Block.objects.select_related("node_set").filter(chain_id=chain_id, height=height).first()
    if block is None:
        raise NotFound(f"No block at height {height} on chain {chain_id!r}.", code="unknown_block")
    return block


def block_header(block: Block) -> dict[str, Any]:
    """The header exactly as hashed (ECP/1 §4)."""
    return {
        "chain": block.chain_id,
        "height": block.height,
        "prev_hash": block.prev_hash,
        "timestamp": format_time(block.timestamp),
        "tx_count": block.tx_count,
        "tx_root": block.tx_root,
    }


def transaction_json(tx: Transaction) -> dict[str, Any]:
    return {"type": tx.type, "nonce": tx.nonce, "body": json.loads(tx.body), "tx_id": tx.tx_id}


def block_detail(block: Block) -> dict[str, Any]:
    """The stored block as submitted, with its verification record."""
    transactions = Transaction.objects.filter(block=block).order_by("index")
    return {
        "header": block_header(block),
        "block_hash": block.block_hash,
        "transactions": [transaction_json(tx) for tx in transactions],
        "signatures": block.signatures,
        "verification": {**block.verification, "received_at": format_time(block.received_at)},
    }


def transaction_get(*, tx_id: str, chain_id: str | None = None) -> Transaction:
    qs = Transaction.objects.select_related("block").filter(tx_id=tx_id)
    if chain_id is not None:
        qs = qs.filter(chain_id=chain_id)
    tx = qs.order_by("chain_id").first()
    if tx is None:
        raise NotFound(f"No transaction {tx_id!r}.", code="unknown_transaction")
    return tx


def transaction_detail(tx: Transaction) -> dict[str, Any]:
    return {
        **transaction_json(tx),
        "chain": tx.chain_id,
        "height": tx.height,
        "index": tx.index,
        "block_hash": tx.block.block_hash,
        "timestamp": format_time(tx.block.timestamp),
    }


def rejection_list(*, chain_id: str | None = None) -> QuerySet[RejectedSubmission]:
    qs = RejectedSubmission.objects.all()
    if chain_id:
        qs = qs.filter(chain_id_text=chain_id)
    return qs.order_by("-received_at", "-id")


def rejection_json(rejection: RejectedSubmission) -> dict[str, Any]:
    return {
        "id": rejection.pk,
        "chain": rejection.chain_id_text,
        "received_at": format_time(rejection.received_at),
        "status": rejection.status,
        "code": rejection.code,
        "detail": rejection.detail,
        "height": rejection.height,
        "block_hash": rejection.block_hash or None,
        "token": rejection.token_prefix or None,
        "body_sm3": rejection.body_sm3 or None,
        "body_size": rejection.body_size,
        "extra": rejection.extra,
    }
