"""Pure constructors of well-formed ECP/1 transactions and blocks, for the simulator and tests."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from .hashing import compute_block_hash, compute_tx_id, tx_root
from .schemas import GENESIS_PREV_HASH
from .times import format_time

Signer = Callable[[bytes], list[dict[str, str]]]

__all__ = ["GENESIS_PREV_HASH", "Signer", "format_time", "make_block", "make_header", "make_transaction"]


def make_transaction(type: str, nonce: str, body: Mapping[str, Any]) -> dict[str, Any]:
    """{"type", "nonce", "body", "tx_id"} with the tx_id computed."""
    body = dict(body)
    return {"type": type, "nonce": nonce, "body": body, "tx_id": compute_tx_id(type, nonce, body)}


def make_header(chain: str, height: int, prev_hash: str, timestamp: datetime | str, tx_count: int,
                tx_root: str) -> dict[str, Any]:
    """A block header; `timestamp` may be an aware datetime or an ECP/1 time string."""
    text = timestamp if isinstance(timestamp, str) else format_time(timestamp)
    return {"chain": chain, "height": height, "prev_hash": prev_hash, "timestamp": text,
            "tx_count": tx_count, "tx_root": tx_root}


def make_block(chain: str, height: int, prev_hash: str, timestamp: datetime | str,
               transactions: Sequence[Mapping[str, Any]], sign: Signer | None = None) -> dict[str, Any]:
    """A block with tx_count, tx_root and block_hash computed.

    `sign` receives the 32 raw bytes of block_hash and returns the `signatures` list
    (`[{"node": ..., "sig": ...}]`); without it the block is unsigned.
    """
    txs = [dict(tx) for tx in transactions]
    header = make_header(chain, height, prev_hash, timestamp, len(txs), tx_root([tx["tx_id"] for tx in txs]))
    block_hash = compute_block_hash(header)
    signatures = sign(bytes.fromhex(block_hash)) if sign is not None else []
    return {"header": header, "block_hash": block_hash, "transactions": txs, "signatures": list(signatures)}
