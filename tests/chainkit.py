"""A business chain for tests: registered through the real service, blocks signed with real SM2 keys.

    chain = TestChain.register("sse")             # 4 nodes, quorum 3
    block = chain.block([chain.tx("trade", {...})])
    response = chain.post(client, block)           # through the HTTP API
    chain.accept(block)                            # the local head moves on
"""

from __future__ import annotations

import itertools
import json
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from businesschain.protocol.builder import make_block, make_transaction
from businesschain.protocol.identifiers import make_prc_id, make_uscc
from businesschain.registry import chain_register
from gm import sm2

GENESIS = "0" * 64
_keys_cache: list[sm2.SM2PrivateKey] = []


def node_keys(count: int) -> list[sm2.SM2PrivateKey]:
    """Node keys, generated once per test session (key generation is the slow part)."""
    while len(_keys_cache) < count:
        _keys_cache.append(sm2.generate_private_key())
    return _keys_cache[:count]


@dataclass
class TestChain:
    __test__ = False  # not a pytest class

    chain_id: str
    key: str
    nodes: dict[str, sm2.SM2PrivateKey]
    height: int = -1
    head_hash: str = GENESIS
    clock: datetime = field(default_factory=lambda: datetime.now(UTC) - timedelta(hours=1))
    _nonces: itertools.count[int] = field(default_factory=itertools.count)

    @classmethod
    def register(cls, chain_id: str = "sse", *, nodes: int = 4, quorum: int = 3,
                 name: str = "上证链") -> TestChain:
        keys = node_keys(nodes)
        node_map = {f"{chain_id}-node-{i + 1}": k for i, k in enumerate(keys)}
        issued = chain_register(chain_id=chain_id, name=name, quorum=quorum,
                                nodes={n: k.public_key().to_hex() for n, k in node_map.items()})
        return cls(chain_id=chain_id, key=issued.key, nodes=node_map)

    # --- building -------------------------------------------------------------------------
    def tx(self, type_: str, body: Mapping[str, Any], nonce: str | None = None) -> dict[str, Any]:
        return make_transaction(type_, nonce or f"{self.chain_id}-{next(self._nonces):08d}", body)

    def signer(self, signers: Sequence[str] | None = None,
               tamper: Callable[[str, str], str] | None = None) -> Callable[[bytes], list[dict[str, str]]]:
        names = list(signers) if signers is not None else list(self.nodes)[:3]

        def sign(message: bytes) -> list[dict[str, str]]:
            out = []
            for name in names:
                sig = self.nodes[name].sign(message).hex() if name in self.nodes else "00" * 64
                out.append({"node": name, "sig": tamper(name, sig) if tamper else sig})
            return out

        return sign

    def block(self, transactions: Sequence[Mapping[str, Any]] = (), *, height: int | None = None,
              prev_hash: str | None = None, timestamp: datetime | None = None,
              signers: Sequence[str] | None = None,
              tamper: Callable[[str, str], str] | None = None) -> dict[str, Any]:
        """The next block on the local head (not yet accepted: call `accept`)."""
        self.clock += timedelta(seconds=1)
        return make_block(
            self.chain_id,
            self.height + 1 if height is None else height,
            self.head_hash if prev_hash is None else prev_hash,
            timestamp or self.clock,
            list(transactions),
            self.signer(signers, tamper),
        )

    def accept(self, block: Mapping[str, Any]) -> None:
        self.height = block["header"]["height"]
        self.head_hash = block["block_hash"]

    # --- sending --------------------------------------------------------------------------
    def headers(self) -> dict[str, str]:
        return {"HTTP_AUTHORIZATION": f"Token {self.key}"}

    def post(self, client: Any, payload: Mapping[str, Any] | bytes, *, key: str | None = None) -> Any:
        body = payload if isinstance(payload, bytes) else json.dumps(payload, ensure_ascii=False).encode()
        headers = {"HTTP_AUTHORIZATION": f"Token {key or self.key}"}
        return client.post(f"/api/v1/chains/{self.chain_id}/blocks", data=body,
                           content_type="application/json", **headers)

    def submit(self, client: Any, transactions: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
        """Build, post and accept the next block; fail loudly if it was not accepted."""
        block = self.block(transactions)
        response = self.post(client, block)
        assert response.status_code == 201, response.content
        self.accept(block)
        return block


class Ids:
    """Valid identifiers from a fixed seed."""

    def __init__(self, seed: int = 7) -> None:
        self._rng = random.Random(seed)

    def org(self) -> str:
        return make_uscc(self._rng)

    def person(self) -> str:
        return make_prc_id(self._rng)
