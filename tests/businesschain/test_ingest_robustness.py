"""Ingestion under stress: concurrent submitters, mutated blocks, the registration command."""

from __future__ import annotations

import copy
import io
import json
import threading

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, connections
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from businesschain.models import Block, Chain, NodeSet, RejectedSubmission, Transaction
from businesschain.registry import chain_register, chain_token_rotate
from tests.chainkit import Ids, TestChain, node_keys


def trades(chain: TestChain, n: int) -> list[dict]:
    return [
        chain.tx("trade", {"security": "600000", "buyer": "A0000001", "seller": "A0000002",
                           "quantity": "100", "price": "10.50", "executed_at": "2026-11-21T01:00:00.000Z"})
        for _ in range(n)
    ]


@pytest.mark.django_db(transaction=True)
def test_concurrent_submissions_never_accept_two_blocks_at_one_height():
    if connection.vendor != "postgresql":
        pytest.skip("row locking is exercised on PostgreSQL (CI); SQLite serialises whole transactions")
    sse = TestChain.register("sse")
    # Eight different, validly signed candidates for each of heights 0..2, sent by eight threads.
    rounds = 3
    results: list[int] = []
    lock = threading.Lock()
    for _ in range(rounds):
        candidates = [sse.block(trades(sse, 3)) for _ in range(8)]
        barrier = threading.Barrier(len(candidates))

        def send(block: dict, barrier: threading.Barrier = barrier) -> None:
            try:
                barrier.wait()
                response = sse.post(Client(), block)
                with lock:
                    results.append(response.status_code)
            finally:
                connections.close_all()

        threads = [threading.Thread(target=send, args=(b,)) for b in candidates]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        stored = Block.objects.filter(chain_id="sse", height=sse.height + 1).get()
        sse.accept({"header": {"height": stored.height}, "block_hash": stored.block_hash})
    assert results.count(201) == rounds
    assert results.count(409) == rounds * 7  # the losers see a fork at their height
    assert Block.objects.filter(chain_id="sse").count() == rounds
    assert Chain.objects.get(id="sse").head_height == rounds - 1


def test_two_chains_ingest_independently(client, db):
    sse, szse = TestChain.register("sse"), TestChain.register("szse", name="深证链")
    sse.submit(client, trades(sse, 2))
    szse.submit(client, trades(szse, 2))
    szse.submit(client, trades(szse, 2))
    assert Chain.objects.get(id="sse").head_height == 0
    assert Chain.objects.get(id="szse").head_height == 1


# --- mutation property -----------------------------------------------------------------------

_MUTATIONS = st.sampled_from([
    "drop_key", "add_key", "change_string", "change_int", "float", "null", "list", "huge_int",
    "swap_tx", "drop_tx", "truncate_body", "bad_utf8", "change_sig",
])


def _paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, (*prefix, i))


def _mutate(block: dict, mutation: str, choice: int) -> bytes:
    block = copy.deepcopy(block)
    paths = [p for p in _paths(block) if p]
    path = paths[choice % len(paths)]
    parent = block
    for key in path[:-1]:
        parent = parent[key]
    key = path[-1]
    if mutation == "drop_key" and isinstance(parent, dict):
        del parent[key]
    elif mutation == "add_key" and isinstance(parent, dict):
        parent["unexpected"] = "x"
    elif mutation == "change_string" and isinstance(parent[key], str):
        parent[key] = parent[key][:-1] + ("0" if parent[key][-1:] != "0" else "1")
    elif mutation == "change_int" and isinstance(parent[key], int) and not isinstance(parent[key], bool):
        parent[key] += 1
    elif mutation == "float":
        parent[key] = 1.5
    elif mutation == "null":
        parent[key] = None
    elif mutation == "list":
        parent[key] = [parent[key]]
    elif mutation == "huge_int":
        parent[key] = 2**64
    elif mutation == "swap_tx" and len(block["transactions"]) > 1:
        block["transactions"].reverse()
    elif mutation == "drop_tx" and block["transactions"]:
        block["transactions"].pop()
    elif mutation == "change_sig" and block["signatures"]:
        sig = block["signatures"][choice % len(block["signatures"])]
        sig["sig"] = sig["sig"][:10] + ("a" if sig["sig"][10] != "a" else "b") + sig["sig"][11:]
    elif mutation == "truncate_body":
        return json.dumps(block).encode()[: max(1, choice % 200)]
    elif mutation == "bad_utf8":
        return json.dumps(block, ensure_ascii=False).encode().replace(b"\"", b"\xff\"", 1)
    else:
        parent[key] = "mutated"
    return json.dumps(block, ensure_ascii=False).encode()


@pytest.fixture(scope="module")
def valid_block():
    chain = TestChain(chain_id="sse", key="", nodes={f"sse-node-{i + 1}": k
                                                    for i, k in enumerate(node_keys(4))})
    ids = Ids(3)
    txs = [
        chain.tx("entity_register", {"id": ids.org(), "kind": "org", "name": "甲公司", "id_type": "USCC"}),
        chain.tx("shareholding", {"issuer": ids.org(), "holder": ids.person(), "shares": "10",
                                  "total_shares": "100", "as_of": "2026-01-01T00:00:00.000Z"}),
        *trades(chain, 2),
    ]
    return chain.block(txs)


@pytest.mark.django_db
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(mutation=_MUTATIONS, choice=st.integers(min_value=0, max_value=10_000))
def test_mutated_blocks_never_cause_500_and_are_never_stored(valid_block, mutation, choice):
    # Hypothesis runs every example inside one test transaction: set the chain up once.
    if not Chain.objects.filter(id="sse").exists():
        chain_register(chain_id="sse", name="上证链", quorum=3,
                       nodes={f"sse-node-{i + 1}": k.public_key().to_hex()
                              for i, k in enumerate(node_keys(4))})
    key = chain_token_rotate(chain_id="sse").key
    body = _mutate(valid_block, mutation, choice)
    client = Client()
    response = client.post("/api/v1/chains/sse/blocks", data=body, content_type="application/json",
                           HTTP_AUTHORIZATION=f"Token {key}")
    assert response.status_code < 500, response.content
    if body == json.dumps(valid_block, ensure_ascii=False).encode():
        return  # the mutation was a no-op for this shape
    if response.status_code in (200, 201):
        # Only a mutation that keeps the block byte-equivalent may be accepted.
        stored = Block.objects.get(chain_id="sse", height=0)
        assert stored.block_hash == valid_block["block_hash"]
        stored_ids = Transaction.objects.filter(block=stored).order_by("index").values_list("tx_id",
                                                                                          flat=True)
        assert list(stored_ids) == [tx["tx_id"] for tx in valid_block["transactions"]]
        Transaction.objects.all().delete()
        Block.objects.all().delete()
        Chain.objects.filter(id="sse").update(head_height=-1, head_hash="", head_timestamp=None)
    else:
        assert response.json()["code"]
        assert not Block.objects.exists()
        assert RejectedSubmission.objects.filter(code=response.json()["code"]).exists()


# --- register_chain --------------------------------------------------------------------------

@pytest.mark.django_db
def test_register_chain_command_prints_a_working_key_and_versions_nodes(client, tmp_path):
    keys = node_keys(5)
    out = io.StringIO()
    pem = tmp_path / "n4.pem"
    pem.write_bytes(keys[3].public_key().to_pem())
    call_command(
        "register_chain", "--id", "sse", "--name", "上证链", "--quorum", "3",
        *[arg for i in range(3) for arg in ("--node", f"sse-node-{i + 1}={keys[i].public_key().to_hex()}")],
        "--node", f"sse-node-4=@{pem}", stdout=out,
    )
    key = out.getvalue().strip().splitlines()[-1]
    chain = TestChain(chain_id="sse", key=key, nodes={f"sse-node-{i + 1}": keys[i] for i in range(4)})
    chain.submit(client, trades(chain, 1))

    out = io.StringIO()
    call_command("register_chain", "--id", "sse", "--remove-node", "sse-node-1",
                 "--add-node", f"sse-node-5={keys[4].public_key().to_hex()}", stdout=out)
    assert "v2" in out.getvalue()
    assert NodeSet.objects.get(chain_id="sse", version=2).valid_from_height == 1
    chain.nodes["sse-node-5"] = keys[4]
    # The removed node no longer counts towards quorum from height 1 on.
    block = chain.block(trades(chain, 1), signers=["sse-node-1", "sse-node-2", "sse-node-3"])
    assert chain.post(client, block).json()["code"] == "quorum_not_met"
    block = chain.block(trades(chain, 1), signers=["sse-node-2", "sse-node-3", "sse-node-5"])
    assert chain.post(client, block).status_code == 201
    # Height 0 keeps its node set (v1), so old blocks still verify against the nodes of their time.
    assert Block.objects.get(chain_id="sse", height=0).node_set.version == 1

    out = io.StringIO()
    call_command("register_chain", "--id", "sse", "--rotate-token", stdout=out)
    new_key = out.getvalue().strip().splitlines()[-1]
    assert new_key != key
    assert chain.post(client, chain.block(), key=key).status_code == 401


@pytest.mark.django_db
def test_register_chain_refuses_bad_input():
    with pytest.raises(CommandError, match="invalid_chain_id"):
        call_command("register_chain", "--id", "SSE!", "--name", "x", "--quorum", "1",
                     "--node", f"n1={node_keys(1)[0].public_key().to_hex()}", stdout=io.StringIO())
    with pytest.raises(CommandError, match="invalid_public_key"):
        call_command("register_chain", "--id", "sse", "--name", "x", "--quorum", "1",
                     "--node", "n1=04abcd", stdout=io.StringIO())
    with pytest.raises(CommandError, match="invalid_quorum"):
        call_command("register_chain", "--id", "sse", "--name", "x", "--quorum", "2",
                     "--node", f"n1={node_keys(1)[0].public_key().to_hex()}", stdout=io.StringIO())
    assert not Chain.objects.exists()
