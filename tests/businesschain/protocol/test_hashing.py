"""tx_id, block_hash, tx_root and anchor leaves (ECP/1 §3, §4, §6), computed independently here."""

from __future__ import annotations

import hashlib
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from businesschain.protocol import hashing, merkle
from businesschain.protocol.canonical import CanonicalJSONError, canonical_json
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


def test_a_built_block_hashes_to_its_own_header_and_tx_ids():
    block = parse_block(valid_block())
    assert hashing.compute_block_hash(block.header_raw) == block.block_hash
    assert hashing.tx_root([tx.tx_id for tx in block.transactions]) == block.header.tx_root
    assert hashing.first_duplicate(tx.tx_id for tx in block.transactions) is None


_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=20)


@settings(max_examples=200, deadline=None)
@given(type_=_text, nonce=_text,
       body=st.dictionaries(st.text(st.characters(max_codepoint=127), max_size=8),
                            st.one_of(_text, st.integers(-(2**53) + 1, 2**53 - 1), st.booleans(), st.none()),
                            max_size=5))
def test_tx_bytes_from_the_body_text_equal_canonical_json(type_, nonce, body):
    body_text = canonical_json(body).decode("utf-8")
    expected = canonical_json({"body": body, "nonce": nonce, "type": type_})
    assert hashing.tx_canonical_json(type_, nonce, body_text) == expected


def test_first_duplicate_returns_the_index_of_the_second_occurrence():
    assert hashing.first_duplicate(["a", "b", "c", "b", "a"]) == 3
    assert hashing.first_duplicate([]) is None
