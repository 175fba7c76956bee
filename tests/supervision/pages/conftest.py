"""Fixtures for the dashboard pages: a small world built from index rows directly (fast; the
ingestion path has its own tests)."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth.models import Permission, User
from django.utils import timezone

from businesschain.models import (
    Account,
    Block,
    Chain,
    Entity,
    Holding,
    Node,
    NodeSet,
    RejectedSubmission,
    Role,
    Transaction,
)
from businesschain.protocol.builder import make_transaction
from businesschain.protocol.canonical import canonical_json
from businesschain.protocol.identifiers import make_prc_id, make_uscc

_rng = random.Random(20261121)
#: Well-formed identifiers (valid check characters), fixed by the seed.
ORG_A, ORG_B, PERSON = make_uscc(_rng), make_uscc(_rng), make_prc_id(_rng)


@dataclass
class World:
    chain: Chain
    blocks: list[Block]
    transactions: list[Transaction]
    org_a: str = ORG_A
    org_b: str = ORG_B
    person: str = PERSON


def _tx(block: Block, index: int, type_: str, body: dict) -> Transaction:
    made = make_transaction(type_, f"{block.chain_id}-{block.height}-{index}", body)
    return Transaction.objects.create(
        chain=block.chain, block=block, height=block.height, index=index, tx_id=made["tx_id"],
        type=type_, nonce=made["nonce"], body=canonical_json(made["body"]).decode(),
    )


@pytest.fixture
def world(db) -> World:
    now = timezone.now()
    chain = Chain.objects.create(id="sse", name="上证链", head_height=2, head_hash="c" * 64,
                                 head_timestamp=now, last_block_at=now - timedelta(seconds=5))
    Chain.objects.create(id="szse", name="深证链")
    node_set = NodeSet.objects.create(chain=chain, version=1, quorum=1)
    Node.objects.create(node_set=node_set, node_id="sse-node-1", public_key="04" + "a" * 128)
    blocks = []
    for height in range(3):
        blocks.append(Block.objects.create(
            chain=chain, height=height, block_hash=f"{height:x}" * 64, prev_hash="0" * 64,
            timestamp=now - timedelta(minutes=3 - height), tx_count=0, tx_root="e" * 64,
            signatures=[{"node": "sse-node-1", "sig": "30" + "ab" * 70}], node_set=node_set,
            verification={"signers": ["sse-node-1"], "ignored_signers": [], "quorum": 1,
                          "node_set_version": 1, "unresolved": {}},
            received_at=now - timedelta(minutes=3 - height),
        ))
    txs = [
        _tx(blocks[1], 0, "entity_register", {"id": ORG_A, "kind": "org", "name": "甲科技股份有限公司",
                                             "id_type": "USCC"}),
        _tx(blocks[1], 1, "entity_register", {"id": PERSON, "kind": "person", "name": "张三",
                                             "id_type": "PRC_ID"}),
        _tx(blocks[2], 0, "shareholding", {"issuer": ORG_A, "holder": PERSON, "shares": "600",
                                          "total_shares": "1000", "as_of": "2026-11-21T08:00:00.000Z"}),
    ]
    Block.objects.filter(pk=blocks[1].pk).update(tx_count=2)
    Block.objects.filter(pk=blocks[2].pk).update(tx_count=1)
    registered = ((ORG_A, "org", "甲科技股份有限公司", txs[0]), (PERSON, "person", "张三", txs[1]),
                  (ORG_B, "org", "乙投资有限公司", txs[0]))
    for ent, kind, name, tx in registered:
        Entity.objects.create(id=ent, kind=kind, name=name, id_type="USCC" if kind == "org" else "PRC_ID",
                              chain=chain, tx_id=tx.tx_id, height=1)
    as_of = datetime(2026, 11, 21, 8, tzinfo=UTC)
    Holding.objects.create(issuer_id=ORG_A, holder_id=PERSON, shares=600, total_shares=1000, as_of=as_of,
                           chain=chain, tx_id=txs[2].tx_id, height=2)
    Holding.objects.create(issuer_id=ORG_B, holder_id=ORG_A, shares=300, total_shares=1000, as_of=as_of,
                           chain=chain, tx_id=txs[2].tx_id, height=2)
    Role.objects.create(org_id=ORG_A, person_id=PERSON, role="director", active=True, chain=chain,
                        tx_id=txs[1].tx_id, height=1)
    Account.objects.create(chain=chain, account="A000000001", holder_id=PERSON, broker_id=ORG_B,
                           tx_id=txs[1].tx_id, height=1)
    RejectedSubmission.objects.create(chain_id_text="sse", token_prefix="abcd1234", received_at=now,
                                      status=409, code="height_gap", detail="height 9 above next 3",
                                      extra={"expected_height": 3}, height=9)
    return World(chain=chain, blocks=blocks, transactions=txs)


@pytest.fixture
def outsider_client(client, db):
    user = User.objects.create_user("visitor", password="visitor-pass-123")
    client.force_login(user)
    return client


@pytest.fixture
def revealing_client(client, regulator):
    """A regulator who may see person identifiers."""
    permission = Permission.objects.get(content_type__app_label="supervision",
                                        codename="view_person_identifiers")
    regulator.user_permissions.add(permission)
    client.force_login(User.objects.get(pk=regulator.pk))
    return client


def body_of(tx: Transaction) -> dict:
    return json.loads(tx.body)


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    """The default hasher costs ~0.3 s per password; these tests are not about hashing."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _fresh_ownership_structure():
    """The penetration selectors cache the ownership structure per process under a key of row ids,
    which rolled-back tests reuse: start every page test from the database."""
    from supervision.penetration import clear_structure_cache

    clear_structure_cache()
    yield
    clear_structure_cache()
