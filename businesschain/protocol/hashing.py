"""The hashes of ECP/1 §3, §4 and §6, and the per-block checks built on them.

- `tx_id`      = SM3(CJ({"body", "nonce", "type"}))
- `block_hash` = SM3(CJ(header))            (also the supervision-chain header hash, §6)
- `tx_root`    = MTH over the 32 raw bytes of each tx_id, in order
- anchor leaf  = CJ({"block_hash", "chain", "height"})

`first_duplicate` gives the `tx_index` of `duplicate_tx`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from json.encoder import encode_basestring  # type: ignore[attr-defined]
from typing import Any

from gm.sm3 import sm3_hex

from . import merkle
from .canonical import canonical_json


def tx_canonical_json(type: str, nonce: str, body_json: str) -> bytes:
    """CJ({"body", "nonce", "type"}) built from the body's own CJ text without re-encoding it: the
    keys sort as written, and `encode_basestring` is the string encoder `json.dumps` uses. This is
    how ingestion checks tx_ids and the audit recomputes them from stored rows."""
    return ('{"body":' + body_json + ',"nonce":' + encode_basestring(nonce)
            + ',"type":' + encode_basestring(type) + "}").encode("utf-8")


def compute_tx_id(type: str, nonce: str, body: Mapping[str, Any]) -> str:
    """SM3(CJ({"body", "nonce", "type"})) as hex; checks that the body is canonical JSON."""
    return sm3_hex(canonical_json({"body": body, "nonce": nonce, "type": type}))


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


def first_duplicate(values: Iterable[str]) -> int | None:
    """Index of the first value already seen earlier in `values` (e.g. tx_ids or nonces of a block)."""
    seen: set[str] = set()
    for index, value in enumerate(values):
        if value in seen:
            return index
        seen.add(value)
    return None
