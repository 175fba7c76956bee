"""The hashes of ECP/1 §3, §4 and §6, and the per-block checks built on them.

- `tx_id`      = SM3(CJ({"body", "nonce", "type"}))
- `block_hash` = SM3(CJ(header))            (also the supervision-chain header hash, §6)
- `tx_root`    = MTH over the 32 raw bytes of each tx_id, in order
- anchor leaf  = CJ({"block_hash", "chain", "height"})

The `first_bad_*` helpers return the index of the first failing transaction (the `tx_index` of
`bad_tx_id`, `duplicate_tx`), or None. They trust a `Block` from `schemas.parse_block`, whose
bodies are already known to be canonical-JSON values.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from gm.sm3 import sm3_digest, sm3_hex

from . import merkle
from .canonical import canonical_json, canonical_json_unchecked
from .schemas import Block, Transaction


def compute_tx_id(type: str, nonce: str, body: Mapping[str, Any]) -> str:
    """SM3(CJ({"body", "nonce", "type"})) as hex; checks that the body is canonical JSON."""
    return sm3_hex(canonical_json({"body": body, "nonce": nonce, "type": type}))


def transaction_tx_id(tx: Transaction) -> str:
    """The tx_id a parsed (hence validated) transaction should carry."""
    return sm3_hex(canonical_json_unchecked({"body": tx.body, "nonce": tx.nonce, "type": tx.type}))


def compute_block_hash(header_raw: Mapping[str, Any]) -> str:
    """SM3(CJ(header)) as hex."""
    return sm3_hex(canonical_json(header_raw))


def tx_root(tx_ids: Sequence[str]) -> str:
    """MTH over the raw 32 bytes of each hex tx_id, as hex."""
    return merkle.root([bytes.fromhex(tx_id) for tx_id in tx_ids]).hex()


def anchor_leaf(chain: str, height: int, block_hash: str) -> bytes:
    """CJ({"block_hash", "chain", "height"}): one leaf of a supervision block's anchor tree (§6)."""
    return canonical_json({"block_hash": block_hash, "chain": chain, "height": height})


def anchor_leaf_hash(chain: str, height: int, block_hash: str) -> bytes:
    """SM3(0x00 ‖ anchor leaf): what a receipt's audit path starts from."""
    return merkle.leaf_hash(anchor_leaf(chain, height, block_hash))


def block_hash_bytes(block_hash: str) -> bytes:
    """The 32 raw bytes of a hex block hash: the message every block signature signs."""
    return bytes.fromhex(block_hash)


def first_bad_tx_id(transactions: Sequence[Transaction]) -> int | None:
    """Index of the first transaction whose tx_id is not the hash of its content (`bad_tx_id`)."""
    encode = canonical_json_unchecked
    for index, tx in enumerate(transactions):
        if sm3_digest(encode({"body": tx.body, "nonce": tx.nonce, "type": tx.type})).hex() != tx.tx_id:
            return index
    return None


def block_tx_root(block: Block) -> str:
    """The tx_root the block's transactions give (compare with `block.header.tx_root`)."""
    return tx_root([tx.tx_id for tx in block.transactions])


def first_duplicate(values: Iterable[str]) -> int | None:
    """Index of the first value already seen earlier in `values` (e.g. tx_ids or nonces of a block)."""
    seen: set[str] = set()
    for index, value in enumerate(values):
        if value in seen:
            return index
        seen.add(value)
    return None
