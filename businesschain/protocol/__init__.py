"""ECP/1 wire rules, pure (no Django): canonical JSON, SM3 Merkle trees, identifiers, schemas, hashes.

The API and the services import from here: `protocol.parse_submission(request.body)`,
`protocol.parse_block(raw)`, `protocol.tx_canonical_json(type, nonce, body_text)`, ...
"""

from __future__ import annotations

from .canonical import CanonicalJSONError, JSONFloat, canonical_json, canonical_json_unchecked
from .hashing import (
    anchor_leaf,
    anchor_leaf_hash,
    compute_block_hash,
    compute_tx_id,
    first_duplicate,
    tx_canonical_json,
    tx_root,
)
from .references import defines, references
from .schemas import (
    GENESIS_PREV_HASH,
    MAX_BLOCK_TRANSACTIONS,
    MAX_BODY_BYTES,
    Block,
    FieldError,
    Header,
    SchemaError,
    Signature,
    Transaction,
    is_batch,
    load_json,
    parse_batch,
    parse_block,
    parse_submission,
    parse_transaction,
    transaction_count,
)
from .times import format_time, parse_time

__all__ = [
    "GENESIS_PREV_HASH",
    "MAX_BLOCK_TRANSACTIONS",
    "MAX_BODY_BYTES",
    "Block",
    "CanonicalJSONError",
    "FieldError",
    "Header",
    "JSONFloat",
    "SchemaError",
    "Signature",
    "Transaction",
    "anchor_leaf",
    "anchor_leaf_hash",
    "canonical_json",
    "canonical_json_unchecked",
    "compute_block_hash",
    "compute_tx_id",
    "defines",
    "first_duplicate",
    "format_time",
    "is_batch",
    "load_json",
    "parse_batch",
    "parse_block",
    "parse_submission",
    "parse_time",
    "parse_transaction",
    "references",
    "transaction_count",
    "tx_canonical_json",
    "tx_root",
]
