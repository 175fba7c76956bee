"""tx_id, block_hash, tx_root and anchor leaves (ECP/1 §3, §4, §6), computed independently here."""

from __future__ import annotations

import copy
import hashlib
import json

import pytest

from businesschain.protocol import hashing, merkle
from businesschain.protocol.canonical import CanonicalJSONError
from businesschain.protocol.schemas import parse_block

from .samples import valid_block


def sm3_hex(data: bytes) -> str:
    return hashlib.new("sm3", data).hexdigest()


def cj(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def test_tx_id_is_sm3_of_the_canonical_body_nonce_type_object():
    body = {"security": "600000", "buyer": "A123456789", "seller": "B987654321", "quantity": "100",
            "price": "12.34", "executed_at": "2026-11-21T08:00:01.250Z"}
    expected_bytes = (b'{"body":{"buyer":"A123456789","executed_at":"2026-11-21T08:00:01.250Z",'
                      b'"price":"12.34","quantity":"100","security":"600000","seller":"B987654321"},'
                      b'"nonce":"sse-000042-0007","type":"trade"}')
    assert cj({"type": "trade", "nonce": "sse-000042-0007", "body": body}) == expected_bytes
    assert hashing.compute_tx_id("trade", "sse-000042-0007", body) == sm3_hex(expected_bytes)


def test_tx_id_hashes_non_ascii_text_as_utf8():
    body = {"id": "91350100M000100Y43", "kind": "org", "name": "示例", "id_type": "USCC"}
    canonical = ('{"body":{"id":"91350100M000100Y43","id_type":"USCC","kind":"org","name":"示例"},'
                 '"nonce":"n","type":"entity_register"}').encode()
    assert hashing.compute_tx_id("entity_register", "n", body) == sm3_hex(canonical)


def test_tx_id_refuses_a_body_outside_canonical_json():
    with pytest.raises(CanonicalJSONError) as exc:
        hashing.compute_tx_id("trade", "n", {"price": 1.5})
    assert exc.value.path == "/body/price"


def test_block_hash_is_sm3_of_the_canonical_header():
    header = {"chain": "sse", "height": 42, "prev_hash": "0" * 64, "timestamp": "2026-11-21T08:00:00.000Z",
              "tx_count": 2, "tx_root": "ab" * 32}
    expected = (b'{"chain":"sse","height":42,"prev_hash":"' + b"0" * 64
                + b'","timestamp":"2026-11-21T08:00:00.000Z","tx_count":2,"tx_root":"' + b"ab" * 32 + b'"}')
    assert hashing.compute_block_hash(header) == sm3_hex(expected)


def test_tx_root_is_the_mth_over_the_raw_tx_id_bytes():
    ids = [sm3_hex(bytes([i])) for i in range(3)]
    a, b, c = (hashlib.new("sm3", b"\x00" + bytes.fromhex(i)).digest() for i in ids)
    node = hashlib.new("sm3", b"\x01" + a + b).digest()
    assert hashing.tx_root(ids) == hashlib.new("sm3", b"\x01" + node + c).hexdigest()
    assert hashing.tx_root([]) == sm3_hex(b"")


def test_anchor_leaf_is_the_canonical_block_hash_chain_height_object():
    leaf = hashing.anchor_leaf("sse", 42, "ab" * 32)
    assert leaf == b'{"block_hash":"' + b"ab" * 32 + b'","chain":"sse","height":42}'
    assert hashing.anchor_leaf_hash("sse", 42, "ab" * 32) == merkle.leaf_hash(leaf)


def test_verification_helpers_on_a_built_block():
    raw = valid_block()
    block = parse_block(raw)
    assert hashing.compute_block_hash(block.header_raw) == block.block_hash
    assert hashing.block_tx_root(block) == block.header.tx_root
    assert hashing.first_bad_tx_id(block.transactions) is None
    assert all(hashing.transaction_tx_id(tx) == tx.tx_id for tx in block.transactions)
    assert hashing.first_duplicate(tx.tx_id for tx in block.transactions) is None
    assert hashing.block_hash_bytes(block.block_hash) == bytes.fromhex(block.block_hash)

    tampered = copy.deepcopy(raw)
    tampered["transactions"][4]["body"]["shares"] = "1001"
    assert hashing.first_bad_tx_id(parse_block(tampered).transactions) == 4


def test_first_duplicate_returns_the_index_of_the_second_occurrence():
    assert hashing.first_duplicate(["a", "b", "c", "b", "a"]) == 3
    assert hashing.first_duplicate([]) is None
