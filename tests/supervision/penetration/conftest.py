"""A ledger for the analytics tests: business chains whose blocks go through the real ingestion
service (`block_submit`, SM2-signed by registered nodes) and are then analysed like the worker does."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import pytest

from businesschain.ingest import block_submit
from businesschain.models import ChainToken
from businesschain.protocol.builder import format_time
from supervision import penetration
from tests.chainkit import Ids, TestChain


class Ledger:
    """One business chain for the tests; `tx` builders name ECP/1 bodies."""

    def __init__(self, chain_id: str = "sse") -> None:
        self.chain = TestChain.register(chain_id)
        self.chain_id = chain_id
        self.token = ChainToken.objects.get(chain_id=chain_id)

    @property
    def clock(self) -> datetime:
        return self.chain.clock

    def advance(self, delta: timedelta) -> None:
        self.chain.clock += delta

    def submit(self, transactions: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        block = self.chain.block(list(transactions))
        moment = self.chain.clock
        body = json.dumps(block, ensure_ascii=False).encode()
        outcome = block_submit(chain_id=self.chain_id, body=body, token=self.token,
                               now=moment + timedelta(seconds=1))
        assert outcome.accepted, outcome.as_json()
        self.chain.accept(block)
        return block

    # --- transaction bodies ----------------------------------------------------------------
    def register(self, entity: str, kind: str, name: str) -> dict[str, Any]:
        id_type = "USCC" if kind == "org" else "PRC_ID"
        return self.chain.tx("entity_register",
                             {"id": entity, "kind": kind, "name": name, "id_type": id_type})

    def listing(self, security: str, issuer: str, total: int, name: str = "示例股份") -> dict[str, Any]:
        return self.chain.tx("security_listing", {"security": security, "issuer": issuer, "name": name,
                                                  "total_shares": str(total)})

    def account(self, account: str, holder: str, broker: str) -> dict[str, Any]:
        return self.chain.tx("account_open", {"account": account, "holder": holder, "broker": broker})

    def holding(self, holder: str, issuer: str, shares: int, total: int = 10_000) -> dict[str, Any]:
        return self.chain.tx("shareholding", {"issuer": issuer, "holder": holder, "shares": str(shares),
                                              "total_shares": str(total),
                                              "as_of": format_time(self.chain.clock)})

    def role(self, org: str, person: str, role: str = "actual_controller", active: bool = True
             ) -> dict[str, Any]:
        return self.chain.tx("role", {"org": org, "person": person, "role": role, "active": active})

    def concert(self, issuer: str, parties: Sequence[str], active: bool = True) -> dict[str, Any]:
        return self.chain.tx("concert_party", {"issuer": issuer, "parties": list(parties), "active": active})

    def trade(self, security: str, seller: str, buyer: str, quantity: int,
              at: datetime | None = None, price: str = "10.00") -> dict[str, Any]:
        return self.chain.tx("trade", {"security": security, "buyer": buyer, "seller": seller,
                                       "quantity": str(quantity), "price": price,
                                       "executed_at": format_time(at or self.chain.clock)})

    def transfer(self, security: str, source: str, target: str, quantity: int,
                 reason: str = "gift") -> dict[str, Any]:
        return self.chain.tx("transfer", {"security": security, "from": source, "to": target,
                                          "quantity": str(quantity), "reason": reason})

    def disclosure(self, issuer: str, holder: str, kind: str = "shareholding_change") -> dict[str, Any]:
        return self.chain.tx("disclosure", {"issuer": issuer, "holder": holder, "kind": kind,
                                            "doc_sm3": "ab" * 32, "as_of": format_time(self.chain.clock)})


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings) -> None:
    """The shared `regulator` fixture hashes a password; PBKDF2 costs most of a test's time."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def ledger(db) -> Ledger:
    penetration.clear_structure_cache()
    yield Ledger("sse")
    penetration.clear_structure_cache()


@pytest.fixture
def ids() -> Ids:
    return Ids(2026)
