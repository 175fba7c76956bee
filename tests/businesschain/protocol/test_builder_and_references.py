"""The pure builder (simulator and tests) and what transactions refer to."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from businesschain.protocol import hashing
from businesschain.protocol.builder import GENESIS_PREV_HASH, format_time, make_block, make_transaction
from businesschain.protocol.references import defines, references
from businesschain.protocol.schemas import parse_block, parse_transaction
from businesschain.protocol.times import parse_time

from .samples import BODIES, FOREIGN, ORG, ORG2, PERSON, valid_block


def test_make_block_computes_count_root_and_hash_and_signs_the_raw_hash_bytes():
    seen: list[bytes] = []

    def sign(digest: bytes) -> list[dict[str, str]]:
        seen.append(digest)
        return [{"node": "n1", "sig": digest.hex() * 2}]

    txs = [make_transaction(t, f"n{i}", b) for i, (t, b) in enumerate(BODIES)]
    raw = make_block("sse", 0, GENESIS_PREV_HASH, datetime(2026, 1, 1, tzinfo=UTC), txs, sign)
    assert raw["header"] == {"chain": "sse", "height": 0, "prev_hash": "0" * 64,
                             "timestamp": "2026-01-01T00:00:00.000Z", "tx_count": len(txs),
                             "tx_root": hashing.tx_root([tx["tx_id"] for tx in txs])}
    assert raw["block_hash"] == hashing.compute_block_hash(raw["header"])
    assert seen == [bytes.fromhex(raw["block_hash"])] and len(seen[0]) == 32
    assert raw["signatures"] == [{"node": "n1", "sig": raw["block_hash"] * 2}]
    block = parse_block(raw)
    assert all(hashing.compute_tx_id(tx.type, tx.nonce, tx.body) == tx.tx_id for tx in block.transactions)


def test_make_block_without_signer_is_unsigned_and_accepts_a_time_string():
    raw = make_block("sse", 1, "ab" * 32, "2026-01-01T00:00:00.123Z", [])
    assert raw["signatures"] == [] and raw["header"]["tx_count"] == 0
    assert raw["header"]["tx_root"] == hashing.tx_root([])


def test_make_transaction_round_trips_through_the_schema():
    tx = make_transaction("transfer", "n", BODIES[8][1])
    assert parse_transaction(tx).tx_id == tx["tx_id"] == hashing.compute_tx_id("transfer", "n", BODIES[8][1])


def test_format_time_truncates_to_milliseconds_in_utc():
    moment = datetime(2026, 11, 21, 16, 0, 0, 999999, tzinfo=timezone(timedelta(hours=8)))
    assert format_time(moment) == "2026-11-21T08:00:00.999Z"
    assert format_time(datetime(999, 1, 2, tzinfo=UTC)) == "0999-01-02T00:00:00.000Z"
    assert parse_time(format_time(moment)) == moment.replace(microsecond=999000)
    with pytest.raises(ValueError):
        format_time(datetime(2026, 1, 1))  # naive on purpose


def test_references_and_definitions_of_every_type():
    block = parse_block(valid_block())
    got = [(tx.type, references(tx), defines(tx)) for tx in block.transactions]
    empty: set[str] = set()
    assert got == [
        ("entity_register", {"entities": empty, "accounts": empty, "securities": empty}, ("entity", ORG)),
        ("entity_register", {"entities": empty, "accounts": empty, "securities": empty}, ("entity", PERSON)),
        ("security_listing", {"entities": {ORG}, "accounts": empty, "securities": empty},
         ("security", "600000")),
        ("account_open", {"entities": {PERSON, ORG2}, "accounts": empty, "securities": empty},
         ("account", "A123456789")),
        ("shareholding", {"entities": {ORG, PERSON}, "accounts": empty, "securities": empty}, None),
        ("role", {"entities": {ORG, PERSON}, "accounts": empty, "securities": empty}, None),
        ("concert_party", {"entities": {ORG, PERSON, ORG2}, "accounts": empty, "securities": empty}, None),
        ("trade", {"entities": empty, "accounts": {"A123456789", "B987654321"}, "securities": {"600000"}},
         None),
        ("transfer", {"entities": empty, "accounts": {"A123456789", "B987654321"},
                      "securities": {"600000"}}, None),
        ("disclosure", {"entities": {ORG, ORG2}, "accounts": empty, "securities": empty}, None),
        ("evidence", {"entities": empty, "accounts": empty, "securities": empty}, None),
        ("evidence", {"entities": empty, "accounts": empty, "securities": empty}, None),
    ]
    assert FOREIGN not in got[3][1]["entities"]
