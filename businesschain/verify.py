"""ECP/1 §4 block verification, pure: the checks after the height check, in the order of §5.

`verify_block` takes a parsed block and the chain state its predecessors leave and raises the first
failure as a `BlockRejected` (422) carrying the spec'd code, or returns what it established.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from businesschain.errors import Unprocessable
from businesschain.protocol.canonical import canonical_json_unchecked
from businesschain.protocol.hashing import compute_block_hash, tx_canonical_json, tx_root
from businesschain.protocol.schemas import GENESIS_PREV_HASH, Block
from gm import sm2
from gm.sm3 import sm3_hex


class BlockRejected(Unprocessable):
    """A verification failure (422). `code` is one of ECP/1 §5's verification codes."""


@dataclass(frozen=True, slots=True)
class ChainState:
    """What a block is checked against: the head it must extend and the nodes that may sign."""

    head_height: int
    head_hash: str
    head_timestamp: datetime | None
    nodes: Mapping[str, sm2.SM2PublicKey]
    quorum: int


@dataclass(slots=True)
class Verdict:
    signers: list[str] = field(default_factory=list)
    ignored_signers: list[str] = field(default_factory=list)

    def as_json(self, quorum: int, node_set_version: int) -> dict[str, object]:
        return {
            "signers": self.signers,
            "ignored_signers": self.ignored_signers,
            "quorum": quorum,
            "node_set_version": node_set_version,
        }


def body_texts(block: Block) -> list[str]:
    """CJ(body) of each transaction, computed once: hashed into tx_id and stored as the body."""
    return [canonical_json_unchecked(tx.body).decode("utf-8") for tx in block.transactions]


def verify_block(block: Block, state: ChainState, *, now: datetime, max_skew: timedelta,
                 bodies: Sequence[str]) -> Verdict:
    """Check hashes, links, time and signatures in ECP/1 §5 order; raise the first failure.
    `bodies` are the transactions' CJ texts (`body_texts`)."""
    header = block.header
    if compute_block_hash(block.header_raw) != block.block_hash:
        raise BlockRejected("block_hash is not SM3(CJ(header)).", code="bad_block_hash")
    for index, tx in enumerate(block.transactions):
        if sm3_hex(tx_canonical_json(tx.type, tx.nonce, bodies[index])) != tx.tx_id:
            raise BlockRejected(
                f"transactions[{index}].tx_id is not SM3(CJ({{body, nonce, type}})).",
                code="bad_tx_id",
                tx_index=index,
            )
    if header.tx_count != len(block.transactions):
        raise BlockRejected(
            f"header.tx_count is {header.tx_count} but the block carries "
            f"{len(block.transactions)} transactions.",
            code="bad_tx_count",
        )
    if tx_root([tx.tx_id for tx in block.transactions]) != header.tx_root:
        raise BlockRejected("header.tx_root is not the Merkle root of the tx_ids.", code="bad_tx_root")
    expected_prev = state.head_hash if state.head_height >= 0 else GENESIS_PREV_HASH
    if header.prev_hash != expected_prev:
        raise BlockRejected(
            f"header.prev_hash does not link to the stored head at height {state.head_height}.",
            code="bad_prev_hash",
            expected_prev_hash=expected_prev,
        )
    if state.head_timestamp is not None and header.timestamp < state.head_timestamp:
        raise BlockRejected("header.timestamp is earlier than the previous block's.", code="bad_timestamp")
    if header.timestamp > now + max_skew:
        raise BlockRejected(
            f"header.timestamp is more than {int(max_skew.total_seconds())} s ahead of the "
            "supervisor's clock.",
            code="bad_timestamp",
        )
    return check_signatures(block, state)


def check_signatures(block: Block, state: ChainState) -> Verdict:
    """Every signature by a registered node must verify; distinct valid signers must reach quorum.
    Signatures from unknown node ids are ignored (ECP/1 §4)."""
    message = bytes.fromhex(block.block_hash)
    verdict = Verdict()
    valid: set[str] = set()
    for index, signature in enumerate(block.signatures):
        key = state.nodes.get(signature.node)
        if key is None:
            verdict.ignored_signers.append(signature.node)
            continue
        if not key.verify(message, _hex_bytes(signature.sig)):
            raise BlockRejected(
                f"signatures[{index}] by registered node {signature.node!r} does not verify.",
                code="bad_signature",
                node=signature.node,
                signature_index=index,
            )
        if signature.node not in valid:
            valid.add(signature.node)
            verdict.signers.append(signature.node)
    if len(valid) < state.quorum:
        raise BlockRejected(
            f"{len(valid)} distinct registered nodes signed; quorum is {state.quorum}.",
            code="quorum_not_met",
            valid_signatures=len(valid),
            quorum=state.quorum,
        )
    return verdict


def has_valid_quorum(block: Block, nodes: Mapping[str, sm2.SM2PublicKey], quorum: int) -> bool:
    """Whether a (competing) block carries a correct hash and a valid quorum: a consensus failure."""
    if compute_block_hash(block.header_raw) != block.block_hash:
        return False
    message = bytes.fromhex(block.block_hash)
    valid = {
        s.node for s in block.signatures
        if s.node in nodes and nodes[s.node].verify(message, _hex_bytes(s.sig))
    }
    return len(valid) >= quorum


def _hex_bytes(text: str) -> bytes:
    try:
        return bytes.fromhex(text)
    except ValueError:
        return b""
