"""A simulated business chain: four SM2 consensus nodes, quorum three, a head that moves on acceptance.

`SimulatedChain` numbers transactions, builds and signs blocks (ECP/1 §4) and keeps the head the
supervisor has accepted: `build_block` does not move it, `accept` does, so a refused block is simply
built again. It also makes the two misbehaviours the simulator plants at block level: a block whose
signature from a registered node is garbage (`forged`) and a second, validly signed block for a
height already accepted (`competing_block`, a fork).
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from businesschain.protocol.builder import GENESIS_PREV_HASH, make_block, make_transaction
from businesschain.protocol.times import parse_time
from gm import sm2

from .world import TxSpec

NODE_COUNT = 4
QUORUM = 3


def node_ids(chain_id: str, count: int = NODE_COUNT) -> list[str]:
    return [f"{chain_id}-node-{i}" for i in range(1, count + 1)]


def generate_node_keys(chain_id: str, count: int = NODE_COUNT) -> dict[str, sm2.SM2PrivateKey]:
    """Fresh node keys (secret nonces and scalars come from the backend's CSPRNG)."""
    return {node: sm2.SM2PrivateKey.generate() for node in node_ids(chain_id, count)}


def keys_to_json(keys: Mapping[str, sm2.SM2PrivateKey]) -> dict[str, str]:
    return {node: f"{key.to_int():064x}" for node, key in keys.items()}


def keys_from_json(data: Mapping[str, str]) -> dict[str, sm2.SM2PrivateKey]:
    return {node: sm2.SM2PrivateKey.from_int(int(text, 16)) for node, text in data.items()}


def _millis(moment: datetime) -> datetime:
    moment = moment.astimezone(UTC)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


@dataclass(frozen=True, slots=True)
class Submission:
    """One POST the simulator makes and the answer it expects."""

    block: dict[str, Any]
    expect_status: int  # 201, or the error status
    expect_code: str | None  # the ECP/1 error code when a refusal is expected
    label: str  # "block", "forged_signature", "fork"
    commit: bool  # whether acceptance moves the head


class SimulatedChain:
    """Signing nodes and the accepted head of one business chain."""

    def __init__(self, chain_id: str, keys: Mapping[str, sm2.SM2PrivateKey], *, quorum: int = QUORUM,
                 height: int = -1, head_hash: str | None = None, rng: random.Random | None = None) -> None:
        if not 1 <= quorum <= len(keys):
            raise ValueError("quorum must be between 1 and the number of nodes")
        self.chain_id = chain_id
        self.keys = dict(keys)
        self.quorum = quorum
        self.height = height
        self.head_hash = head_hash or GENESIS_PREV_HASH
        self.head_timestamp: datetime | None = None
        self.last_block: dict[str, Any] | None = None
        self.rng = rng or random.Random()

    @property
    def next_height(self) -> int:
        return self.height + 1

    def public_keys(self) -> dict[str, str]:
        return {node: key.public_key().to_hex() for node, key in self.keys.items()}

    def resync(self, *, height: int, head_hash: str | None) -> None:
        """Take the supervisor's view of the head (after a restart or an unexpected refusal)."""
        if height != self.height or (head_hash or GENESIS_PREV_HASH) != self.head_hash:
            self.last_block = None
            self.head_timestamp = None
        self.height = height
        self.head_hash = head_hash or GENESIS_PREV_HASH

    def nonce(self, height: int, index: int) -> str:
        return f"{self.chain_id}-{height:08d}-{index:05d}"

    def sign(self, block_hash: bytes, nodes: Sequence[str] | None = None) -> list[dict[str, str]]:
        """Signatures of `nodes` (default: all four, or, one time in six, a quorum with one node
        lagging behind) over the raw block hash; DER or raw r‖s, both of which ECP/1 accepts."""
        if nodes is None:
            names = sorted(self.keys)
            nodes = names if self.rng.random() < 5 / 6 else sorted(self.rng.sample(names, self.quorum))
        encoding: Literal["raw", "der"] = "raw" if self.rng.random() < 0.25 else "der"
        return [{"node": node, "sig": self.keys[node].sign(block_hash, encoding=encoding).hex()}
                for node in nodes]

    def build_block(self, specs: Sequence[TxSpec], at: datetime, *,
                    nodes: Sequence[str] | None = None) -> dict[str, Any]:
        """The next block (height `next_height`, linked to the head), signed; the head does not move."""
        height = self.next_height
        timestamp = _millis(at)
        if self.head_timestamp is not None and timestamp < self.head_timestamp:
            timestamp = self.head_timestamp
        transactions = [make_transaction(kind, self.nonce(height, i), body)
                        for i, (kind, body) in enumerate(specs)]
        return make_block(self.chain_id, height, self.head_hash, timestamp, transactions,
                          sign=lambda message: self.sign(message, nodes))

    def accept(self, block: dict[str, Any]) -> None:
        """The supervisor stored `block`: it is the new head."""
        header = block["header"]
        if header["height"] != self.next_height or header["prev_hash"] != self.head_hash:
            raise ValueError("the block does not extend the head")
        self.height = header["height"]
        self.head_hash = block["block_hash"]
        self.head_timestamp = parse_time(header["timestamp"])
        self.last_block = block

    def forged(self, block: dict[str, Any]) -> dict[str, Any]:
        """`block` with one registered node's signature replaced by garbage (expect `bad_signature`)."""
        signatures = [dict(s) for s in block["signatures"]]
        victim = self.rng.randrange(len(signatures))
        signatures[victim]["sig"] = self.rng.randbytes(64).hex()
        return {**block, "signatures": signatures}

    def competing_block(self) -> dict[str, Any] | None:
        """A different block for the last accepted height, signed by every node (expect `fork`, a
        consensus failure): the accepted block's transactions without its last one."""
        accepted = self.last_block
        if accepted is None:
            return None
        header = accepted["header"]
        transactions = accepted["transactions"][:-1]
        if not transactions:
            transactions = [make_transaction("evidence", f"{self.chain_id}-fork-{header['height']}", {
                "business_type": "node_state", "reference": f"{self.chain_id}/{header['height']}",
                "doc_sm3": "0" * 64})]
        return make_block(self.chain_id, header["height"], header["prev_hash"], header["timestamp"],
                          transactions, sign=lambda message: self.sign(message, sorted(self.keys)))

    def submissions(self, block: dict[str, Any], block_patterns: Sequence[str]) -> Iterator[Submission]:
        """The POSTs of one round, lazily: the forged copy if planted, the block itself, then, if
        planted, a fork of whatever is the head once the caller has `accept`ed (or not) the block."""
        if "forged_signature" in block_patterns:
            yield Submission(self.forged(block), 422, "bad_signature", "forged_signature", commit=False)
        yield Submission(block, 201, None, "block", commit=True)
        if "fork" in block_patterns:
            competing = self.competing_block()
            if competing is not None:
                yield Submission(competing, 409, "fork", "fork", commit=False)
