"""ECP/1 §3–4 schema: every rule accepts its valid forms and points at its invalid ones."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from businesschain.errors import DomainError
from businesschain.protocol.canonical import FLOAT_MESSAGE, JSONFloat
from businesschain.protocol.schemas import (
    MAX_ERRORS,
    Block,
    FieldError,
    SchemaError,
    load_json,
    parse_batch,
    parse_block,
    parse_submission,
    parse_transaction,
    transaction_count,
)

from .samples import DELETE, DOC, FOREIGN, INDEX, ORG, ORG2, PERSON, TIME, mutated, valid_block

BLOCK = valid_block()


def errors_of(obj: object) -> list[FieldError]:
    with pytest.raises(SchemaError) as exc:
        parse_block(obj)
    return exc.value.errors


def body(tx_type: str, key: str = "") -> str:
    pointer = f"/transactions/{INDEX[tx_type]}/body"
    return f"{pointer}/{key}" if key else pointer


def test_the_sample_block_is_valid_and_parsed_into_typed_records():
    block = parse_block(BLOCK)
    assert isinstance(block, Block)
    assert block.header.height == 1 and block.header.chain == "sse"
    assert block.header.timestamp == datetime(2026, 11, 21, 8, 0, 2, 500000, tzinfo=UTC)
    assert block.header.timestamp_text == "2026-11-21T08:00:02.500Z"
    assert block.header_raw is BLOCK["header"]
    assert block.block_hash == BLOCK["block_hash"]
    assert [tx.type for tx in block.transactions] == [tx["type"] for tx in BLOCK["transactions"]]
    assert block.transactions[7].body["price"] == "12.34"
    assert block.transactions[7].raw is BLOCK["transactions"][7]
    assert block.signatures[0].node == "sse-node-1"
    assert block.raw is BLOCK


# (pointer, replacement): each must be accepted.
VALID_VARIANTS = [
    ("/header/height", 0), ("/header/height", 2**53 - 1), ("/header/chain", "a" + "b" * 31),
    ("/header/timestamp", "2024-02-29T23:59:59.999Z"), ("/header/tx_count", 0),
    ("/transactions", []), ("/signatures", []),
    ("/signatures/0/sig", "3045022100" + "AB" * 33), ("/signatures/0/node", "n" * 64),
    ("/transactions/0/nonce", " !~\"\\"), ("/transactions/0/nonce", "x" * 64),
    (body("trade", "price"), "0"), (body("trade", "price"), "12345678901234567890.12345678"),
    (body("trade", "quantity"), "0"), (body("trade", "quantity"), "9" * 18),
    (body("trade", "buyer"), "ABC123"), (body("trade", "seller"), "Z" * 20),
    (body("trade", "executed_at"), "2026-12-31T23:59:59.999Z"),
    (body("trade", "buyer"), "B987654321"),  # a wash trade is data, not a schema error
    (body("transfer", "reason"), "court"), (body("transfer", "reason"), "other"),
    (body("shareholding", "holder"), ORG2), (body("shareholding", "holder"), FOREIGN),
    (body("shareholding", "issuer"), FOREIGN), (body("shareholding", "shares"), "0"),
    (body("account_open", "holder"), ORG), (body("account_open", "broker"), "US:broker-1"),
    (body("security_listing", "name"), "名" * 200),
    (body("role", "person"), FOREIGN), (body("role", "role"), "actual_controller"),
    (body("role", "active"), False), (body("concert_party", "parties"), [PERSON, ORG2, FOREIGN]),
    (body("disclosure", "kind"), "periodic"), (body("disclosure", "holder"), PERSON),
    (body("evidence", "fields"), {}), (body("evidence", "business_type"), ""),
    ("/transactions/0/body", {"id": "US:ein-1", "kind": "org", "name": "Acme", "id_type": "OTHER"}),
    ("/transactions/0/body", {"id": FOREIGN, "kind": "person", "name": "Li", "id_type": "OTHER"}),
]


@pytest.mark.parametrize(("pointer", "value"), VALID_VARIANTS)
def test_valid_variants_are_accepted(pointer, value):
    parse_block(mutated(BLOCK, pointer, value))


def test_optional_evidence_fields_may_be_absent():
    parse_block(mutated(BLOCK, body("evidence", "fields")))


# (pointer of the change, replacement or DELETE, pointer of the expected single error, message fragment)
INVALID = [
    # block
    ("", [], "", "expected a block object"),
    ("/extra", 1, "/extra", "unknown key"),
    ("/header", DELETE, "/header", "required"),
    ("/block_hash", DELETE, "/block_hash", "required"),
    ("/transactions", DELETE, "/transactions", "required"),
    ("/signatures", DELETE, "/signatures", "required"),
    ("/block_hash", "AB" * 32, "/block_hash", "lowercase hex"),
    ("/block_hash", "ab" * 31, "/block_hash", "lowercase hex"),
    ("/transactions", {}, "/transactions", "expected an array"),
    # header
    ("/header", [], "/header", "expected an object"),
    ("/header/extra", 1, "/header/extra", "unknown key"),
    ("/header/tx_root", DELETE, "/header/tx_root", "required"),
    ("/header/chain", "SSE", "/header/chain", "chain id"),
    ("/header/chain", "s", "/header/chain", "chain id"),
    ("/header/chain", "a" * 33, "/header/chain", "chain id"),
    ("/header/height", -1, "/header/height", "0 <= n < 2**53"),
    ("/header/height", 2**53, "/header/height", "0 <= n < 2**53"),
    ("/header/height", True, "/header/height", "got boolean"),
    ("/header/height", "1", "/header/height", "got string"),
    ("/header/height", JSONFloat("1.0"), "/header/height", FLOAT_MESSAGE),
    ("/header/prev_hash", "0" * 63, "/header/prev_hash", "lowercase hex"),
    ("/header/tx_root", "G" * 64, "/header/tx_root", "lowercase hex"),
    ("/header/tx_count", -1, "/header/tx_count", "0 <= n"),
    ("/header/tx_count", False, "/header/tx_count", "got boolean"),
    ("/header/timestamp", "2026-11-21T08:00:00Z", "/header/timestamp", "YYYY-MM-DD"),
    ("/header/timestamp", "2026-11-21T08:00:00.000+00:00", "/header/timestamp", "YYYY-MM-DD"),
    ("/header/timestamp", "2026-11-21T08:00:00.0000Z", "/header/timestamp", "YYYY-MM-DD"),
    ("/header/timestamp", "2026-11-21t08:00:00.000z", "/header/timestamp", "YYYY-MM-DD"),
    ("/header/timestamp", "2026-11-21 08:00:00.000Z", "/header/timestamp", "YYYY-MM-DD"),
    ("/header/timestamp", "2026-02-29T08:00:00.000Z", "/header/timestamp", "not a real date"),
    ("/header/timestamp", "2026-11-31T08:00:00.000Z", "/header/timestamp", "not a real date"),
    ("/header/timestamp", "2026-11-21T24:00:00.000Z", "/header/timestamp", "not a real date"),
    ("/header/timestamp", "2016-12-31T23:59:60.000Z", "/header/timestamp", "not a real date"),
    ("/header/timestamp", "0000-01-01T00:00:00.000Z", "/header/timestamp", "not a real date"),
    ("/header/timestamp", "2026-11-21T08:00:00.000Z\n", "/header/timestamp", "YYYY-MM-DD"),
    ("/header/timestamp", 1763712000000, "/header/timestamp", "got integer"),
    # signatures
    ("/signatures", {}, "/signatures", "expected an array"),
    ("/signatures/0", "00" * 64, "/signatures/0", "expected an object"),
    ("/signatures/0/sig", DELETE, "/signatures/0/sig", "required"),
    ("/signatures/0/extra", "x", "/signatures/0/extra", "unknown key"),
    ("/signatures/0/node", "", "/signatures/0/node", "1-64 characters"),
    ("/signatures/0/node", "n" * 65, "/signatures/0/node", "1-64 characters"),
    ("/signatures/0/node", 7, "/signatures/0/node", "got integer"),
    ("/signatures/0/sig", "abc", "/signatures/0/sig", "hex"),
    ("/signatures/0/sig", "zz", "/signatures/0/sig", "hex"),
    ("/signatures/0/sig", "", "/signatures/0/sig", "hex"),
    # transaction envelope
    ("/transactions/0", "tx", "/transactions/0", "expected a transaction object"),
    ("/transactions/0/extra", 1, "/transactions/0/extra", "unknown key"),
    ("/transactions/0/tx_id", DELETE, "/transactions/0/tx_id", "required"),
    ("/transactions/0/body", DELETE, "/transactions/0/body", "required"),
    ("/transactions/0/type", "mint", "/transactions/0/type", "unknown transaction type"),
    ("/transactions/0/type", ["trade"], "/transactions/0/type", "got array"),
    ("/transactions/7/type", {}, "/transactions/7/type", "got object"),
    ("/transactions/0/nonce", "", "/transactions/0/nonce", "printable ASCII"),
    ("/transactions/0/nonce", "x" * 65, "/transactions/0/nonce", "printable ASCII"),
    ("/transactions/0/nonce", "é", "/transactions/0/nonce", "printable ASCII"),
    ("/transactions/7/nonce", "a\tb", "/transactions/7/nonce", "printable ASCII"),
    ("/transactions/7/nonce", "a\x7f", "/transactions/7/nonce", "printable ASCII"),
    ("/transactions/7/nonce", 5, "/transactions/7/nonce", "got integer"),
    ("/transactions/7/tx_id", "A" * 64, "/transactions/7/tx_id", "lowercase hex"),
    ("/transactions/7/body", [], "/transactions/7/body", "expected an object"),
    # bodies: unknown and missing keys
    (body("trade", "extra"), "1", body("trade", "extra"), "unknown key"),
    (body("trade", "price"), DELETE, body("trade", "price"), "required"),
    (body("entity_register", "name"), DELETE, body("entity_register", "name"), "required"),
    (body("evidence", "doc_sm3"), DELETE, body("evidence", "doc_sm3"), "required"),
    # trade
    (body("trade", "security"), "60000", body("trade", "security"), "6 digits"),
    (body("trade", "security"), "６０００００", body("trade", "security"), "6 digits"),
    (body("trade", "security"), 600000, body("trade", "security"), "got integer"),
    (body("trade", "buyer"), "A1234", body("trade", "buyer"), "account"),
    (body("trade", "seller"), "a123456789", body("trade", "seller"), "account"),
    (body("trade", "seller"), "A" * 21, body("trade", "seller"), "account"),
    (body("trade", "quantity"), "01", body("trade", "quantity"), "count"),
    (body("trade", "quantity"), "1" * 19, body("trade", "quantity"), "count"),
    (body("trade", "quantity"), "-1", body("trade", "quantity"), "count"),
    (body("trade", "quantity"), 100, body("trade", "quantity"), "got integer"),
    (body("trade", "price"), "12.123456789", body("trade", "price"), "decimal"),
    (body("trade", "price"), "012.5", body("trade", "price"), "decimal"),
    (body("trade", "price"), "12.", body("trade", "price"), "decimal"),
    (body("trade", "price"), ".5", body("trade", "price"), "decimal"),
    (body("trade", "price"), "1e3", body("trade", "price"), "decimal"),
    (body("trade", "price"), "12.34\n", body("trade", "price"), "decimal"),
    (body("trade", "price"), JSONFloat("12.34"), body("trade", "price"), FLOAT_MESSAGE),
    (body("trade", "price"), 12.34, body("trade", "price"), FLOAT_MESSAGE),
    (body("trade", "executed_at"), "2026-11-21T08:00:01.25Z", body("trade", "executed_at"), "YYYY"),
    (body("trade", "executed_at"), "2026-04-31T08:00:01.250Z", body("trade", "executed_at"),
     "not a real date"),
    (body("trade", "executed_at"), None, body("trade", "executed_at"), "got null"),
    # transfer
    (body("transfer", "from"), "x", body("transfer", "from"), "account"),
    (body("transfer", "to"), "", body("transfer", "to"), "account"),
    (body("transfer", "reason"), "sale", body("transfer", "reason"), "one of gift"),
    (body("transfer", "reason"), "Gift", body("transfer", "reason"), "one of gift"),
    (body("transfer", "quantity"), "1.5", body("transfer", "quantity"), "count"),
    # entity_register
    (body("entity_register", "id"), "91350100M000100Y44", body("entity_register", "id"), "check character"),
    (body("entity_register", "id"), "hk:1", body("entity_register", "id"), "expected"),
    (body("entity_register", "kind"), "company", body("entity_register", "kind"), "one of org"),
    (body("entity_register", "id_type"), "uscc", body("entity_register", "id_type"), "one of USCC"),
    (body("entity_register", "id_type"), "PRC_ID", body("entity_register", "id_type"), "does not match"),
    (body("entity_register", "id_type"), "OTHER", body("entity_register", "id_type"), "does not match"),
    (body("entity_register", "name"), "", body("entity_register", "name"), "1-200"),
    (body("entity_register", "name"), "x" * 201, body("entity_register", "name"), "1-200"),
    (body("entity_register", "name"), "bad\ud800", body("entity_register", "name"), "surrogate"),
    (body("entity_register", "name"), 5, body("entity_register", "name"), "got integer"),
    ("/transactions/1/body/kind", "org", "/transactions/1/body/kind", "cannot have id_type PRC_ID"),
    ("/transactions/1/body/id_type", "USCC", "/transactions/1/body/id_type", "does not match"),
    # security_listing
    (body("security_listing", "security"), "6000001", body("security_listing", "security"), "6 digits"),
    (body("security_listing", "issuer"), PERSON, body("security_listing", "issuer"), "not allowed"),
    (body("security_listing", "total_shares"), "1,000", body("security_listing", "total_shares"), "count"),
    (body("security_listing", "name"), "", body("security_listing", "name"), "1-200"),
    # account_open
    (body("account_open", "account"), "A-123456", body("account_open", "account"), "account"),
    (body("account_open", "holder"), "110105194912310021", body("account_open", "holder"), "USCC nor"),
    (body("account_open", "broker"), PERSON, body("account_open", "broker"), "not allowed"),
    # shareholding
    (body("shareholding", "issuer"), PERSON, body("shareholding", "issuer"), "not allowed"),
    (body("shareholding", "holder"), "HK-1", body("shareholding", "holder"), "expected"),
    (body("shareholding", "shares"), 1000, body("shareholding", "shares"), "got integer"),
    (body("shareholding", "total_shares"), "", body("shareholding", "total_shares"), "count"),
    (body("shareholding", "as_of"), "2026-11-21", body("shareholding", "as_of"), "YYYY"),
    # role
    (body("role", "org"), PERSON, body("role", "org"), "not allowed"),
    (body("role", "person"), ORG, body("role", "person"), "not allowed"),
    (body("role", "role"), "ceo", body("role", "role"), "one of legal_rep"),
    (body("role", "active"), "true", body("role", "active"), "boolean"),
    (body("role", "active"), 1, body("role", "active"), "boolean"),
    # concert_party
    (body("concert_party", "issuer"), PERSON, body("concert_party", "issuer"), "not allowed"),
    (body("concert_party", "parties"), [PERSON], body("concert_party", "parties"), "at least 2"),
    (body("concert_party", "parties"), [], body("concert_party", "parties"), "at least 2"),
    (body("concert_party", "parties"), PERSON, body("concert_party", "parties"), "got string"),
    (body("concert_party", "parties"), [PERSON, PERSON], body("concert_party", "parties/1"), "duplicate"),
    (body("concert_party", "parties"), ["x", PERSON], body("concert_party", "parties/0"), "expected"),
    (body("concert_party", "active"), None, body("concert_party", "active"), "boolean"),
    # disclosure
    (body("disclosure", "issuer"), "US:1", body("disclosure", "issuer") + "x", ""),  # placeholder, see below
    (body("disclosure", "holder"), "91110000600037341M", body("disclosure", "holder"), "check character"),
    (body("disclosure", "kind"), "annual", body("disclosure", "kind"), "one of shareholding_change"),
    (body("disclosure", "doc_sm3"), DOC.upper(), body("disclosure", "doc_sm3"), "lowercase hex"),
    (body("disclosure", "as_of"), TIME[:-1], body("disclosure", "as_of"), "YYYY"),
    # evidence
    (body("evidence", "business_type"), None, body("evidence", "business_type"), "got null"),
    (body("evidence", "reference"), ["x"], body("evidence", "reference"), "got array"),
    (body("evidence", "doc_sm3"), "00", body("evidence", "doc_sm3"), "lowercase hex"),
    (body("evidence", "fields"), "k=v", body("evidence", "fields"), "object of string"),
    (body("evidence", "fields"), {"k": 1}, body("evidence", "fields/k"), "got integer"),
    (body("evidence", "fields"), {"é": "x"}, body("evidence", "fields/é"), "ASCII"),
    (body("evidence", "fields"), {"a/b": None}, body("evidence", "fields/a~1b"), "got null"),
    (body("evidence", "fields"), {"k": "\udc00"}, body("evidence", "fields/k"), "surrogate"),
]
INVALID = [case for case in INVALID if case[3]]  # drop the placeholder (an OTHER issuer is valid)


@pytest.mark.parametrize(("pointer", "value", "error_path", "fragment"), INVALID,
                         ids=[f"{c[0]}={c[1]!r}"[:80] for c in INVALID])
def test_each_invalid_field_is_reported_alone_at_its_pointer(pointer, value, error_path, fragment):
    errors = errors_of(mutated(BLOCK, pointer, value))
    assert [e.path for e in errors] == [error_path], errors
    assert fragment in errors[0].message


def test_an_other_id_is_a_valid_issuer():
    parse_block(mutated(BLOCK, body("disclosure", "issuer"), "US:1"))


def test_all_errors_are_listed_in_document_order():
    obj = mutated(BLOCK, "/header/height", -1)
    obj = mutated(obj, body("trade", "price"), 1.5)
    obj = mutated(obj, body("transfer", "extra"), "x")
    obj = mutated(obj, "/signatures/0/sig", "x")
    assert [e.path for e in errors_of(obj)] == [
        "/header/height", body("trade", "price"), body("transfer", "extra"), "/signatures/0/sig"]


def test_errors_are_capped_and_marked_truncated():
    obj = mutated(BLOCK, "/transactions", [{"type": "trade"}] * 60)
    with pytest.raises(SchemaError) as exc:
        parse_block(obj)
    assert len(exc.value.errors) == MAX_ERRORS
    assert exc.value.truncated
    assert exc.value.as_json()["truncated"] is True


def test_a_tx_with_an_unknown_type_reports_the_type_only():
    obj = mutated(BLOCK, "/transactions/7/type", "trades")
    assert [e.path for e in errors_of(obj)] == ["/transactions/7/type"]


def test_schema_error_renders_as_invalid_block_with_pointers():
    with pytest.raises(SchemaError) as exc:
        parse_block(mutated(BLOCK, "/header/height", -1))
    error = exc.value
    assert isinstance(error, DomainError) and error.http_status == 400
    assert error.as_json() == {"code": "invalid_block", "detail": error.message,
                               "errors": [{"path": "/header/height",
                                           "message": "expected an integer 0 <= n < 2**53"}]}
    assert error.with_index(3).as_json()["index"] == 3


def test_parse_transaction_prefixes_its_pointers():
    tx = mutated(BLOCK["transactions"][7], "/body/price", "x")
    with pytest.raises(SchemaError) as exc:
        parse_transaction(tx, "/transactions/9")
    assert [e.path for e in exc.value.errors] == ["/transactions/9/body/price"]
    assert parse_transaction(BLOCK["transactions"][8]).body["reason"] == "gift"


def test_fast_and_slow_paths_agree_on_day_29_to_31():
    for day in ("29", "30", "31"):
        tx = mutated(BLOCK["transactions"][7], "/body/executed_at", f"2024-01-{day}T00:00:00.000Z")
        assert parse_transaction(tx).body["executed_at"].startswith("2024-01-")
    with pytest.raises(SchemaError):
        parse_transaction(mutated(BLOCK["transactions"][7], "/body/executed_at", "2023-02-29T00:00:00.000Z"))


# --- JSON text --------------------------------------------------------------------------------------

def test_load_json_round_trips_a_block():
    assert load_json(json.dumps(BLOCK).encode()) == BLOCK
    assert load_json(memoryview(json.dumps(BLOCK, ensure_ascii=False).encode())) == BLOCK


@pytest.mark.parametrize(("text", "fragment"), [
    (b'{"a": 1, "a": 2}', "duplicate key 'a'"),
    (b'{"a": NaN}', "NaN"),
    (b'[Infinity]', "Infinity"),
    (b'[-Infinity]', "-Infinity"),
    (b'\xff{}', "not UTF-8"),
    (b'"\xed\xa0\x80"', "not UTF-8"),  # an encoded surrogate is invalid UTF-8
    (b'\xef\xbb\xbf{}', "invalid JSON"),
    (b'{"a": 1} x', "Extra data"),
    (b'', "Expecting value"),
    (b"{'a': 1}", "invalid JSON"),
    (b'[' * 100_000 + b']' * 100_000, "invalid JSON"),
    (b'[' + b'1' * 5000 + b']', "invalid JSON"),
])
def test_load_json_rejects_what_is_not_strict_json(text, fragment):
    with pytest.raises(SchemaError) as exc:
        load_json(text)
    assert [e.path for e in exc.value.errors] == [""]
    assert exc.value.errors[0].message.startswith("invalid JSON")
    assert fragment in exc.value.errors[0].message


def test_load_json_points_at_lone_surrogate_escapes_and_accepts_pairs():
    assert load_json(b'{"a": "\\ud83d\\ude00"}') == {"a": "😀"}
    with pytest.raises(SchemaError) as exc:
        load_json(b'{"a": ["ok", "\\ud83d"], "\\udc00": 1}')
    assert [e.path for e in exc.value.errors] == ["/a/1", "/\udc00"]


def test_floats_in_json_text_are_pointed_at():
    raw = json.dumps(mutated(BLOCK, body("trade", "price"), 12.5)).encode()
    value = load_json(raw)
    assert value["transactions"][7]["body"]["price"] == JSONFloat("12.5")
    errors = errors_of(value)
    assert [(e.path, e.message) for e in errors] == [(body("trade", "price"), FLOAT_MESSAGE)]
    exponent = load_json(b'{"x": 1E5, "y": -0, "z": 10}')
    assert exponent == {"x": JSONFloat("1E5"), "y": 0, "z": 10}


# --- submissions --------------------------------------------------------------------------------------

def test_parse_submission_accepts_one_block_or_a_batch():
    assert parse_submission(BLOCK) == [BLOCK]
    assert parse_submission({"blocks": [BLOCK, BLOCK]}) == [BLOCK, BLOCK]
    assert parse_submission(json.dumps({"blocks": [BLOCK]}).encode()) == [BLOCK]


@pytest.mark.parametrize(("payload", "paths"), [
    ([BLOCK], [""]),
    ("block", [""]),
    ({"blocks": []}, ["/blocks"]),
    ({"blocks": BLOCK}, ["/blocks"]),
    ({"blocks": [BLOCK], "chain": "sse"}, ["/chain"]),
])
def test_parse_submission_rejects_malformed_envelopes(payload, paths):
    with pytest.raises(SchemaError) as exc:
        parse_submission(payload)
    assert [e.path for e in exc.value.errors] == paths


def test_parse_batch_adds_the_index_of_the_failing_block_only_in_a_batch():
    bad = mutated(BLOCK, "/header/chain", "X")
    with pytest.raises(SchemaError) as exc:
        parse_batch({"blocks": [BLOCK, bad]})
    assert exc.value.index == 1
    assert exc.value.as_json()["index"] == 1
    assert [e.path for e in exc.value.errors] == ["/header/chain"]
    with pytest.raises(SchemaError) as exc:
        parse_batch(bad)
    assert exc.value.index is None and "index" not in exc.value.as_json()
    assert [b.header.height for b in parse_batch(json.dumps({"blocks": [BLOCK]}).encode())] == [1]


def test_transaction_count_reads_the_raw_block_for_the_size_check():
    assert transaction_count(BLOCK) == len(BLOCK["transactions"])
    assert transaction_count({"transactions": "x"}) == 0
    assert transaction_count([]) == 0


# --- robustness ----------------------------------------------------------------------------------------

json_like = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10)
    | st.builds(JSONFloat, st.text(max_size=3)),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.sampled_from(["header", "block_hash", "transactions", "signatures", "type", "body",
                                       "nonce", "tx_id", "node", "sig", "chain", "height", "price"])
                      | st.text(max_size=5), inner, max_size=5),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(json_like)
def test_random_junk_only_ever_raises_schema_error(junk):
    try:
        parse_block(junk)
    except SchemaError as error:
        assert error.errors and all(isinstance(e.path, str) for e in error.errors)


def _all_pointers(value: object, prefix: str = "") -> list[str]:
    out = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            out += _all_pointers(item, f"{prefix}/{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            out += _all_pointers(item, f"{prefix}/{index}")
    return out


POINTERS = _all_pointers(BLOCK)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(POINTERS), json_like)
def test_a_valid_block_with_any_member_replaced_by_junk_parses_or_raises_schema_error(pointer, junk):
    try:
        parse_block(mutated(BLOCK, pointer, junk))
    except SchemaError as error:
        assert error.errors


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200) | st.text(max_size=200).map(lambda s: s.encode("utf-8", "surrogatepass")))
def test_load_json_on_random_bytes_only_ever_raises_schema_error(data):
    with contextlib.suppress(SchemaError):
        load_json(data)


class _SlowDict(dict):
    """A dict subclass: parse_transaction skips its one-regex fast path for these."""


near_valid = st.text(alphabet="0123456789.-:TZAaBx\x00\n é", max_size=26)


def field(valid: list[str], invalid: list[str]) -> st.SearchStrategy[str]:
    """Mostly valid values, sometimes a known-invalid one, rarely random near-misses."""
    return st.integers(0, 9).flatmap(
        lambda k: near_valid if k == 0 else st.sampled_from(invalid) if k == 1 else st.sampled_from(valid))


trade_values = st.fixed_dictionaries({
    "security": field(["600000", "000001"], ["60000", "6000000"]),
    "buyer": field(["A123456789", "ABCDEF"], ["a1", "ABCDE"]),
    "seller": field(["B987654321", "Z" * 20], ["Z" * 21]),
    "quantity": field(["0", "1" * 18], ["01", "1" * 19]),
    "price": field(["0", "0.5", "1.12345678"], ["1.123456789", "12.", "00"]),
    "executed_at": field(["2024-02-29T00:00:00.000Z", "2026-11-21T23:59:59.999Z", "2026-05-31T00:00:00.000Z"],
                         ["2023-02-29T00:00:00.000Z", "2026-11-21T24:00:00.000Z", "0000-01-01T00:00:00.000Z",
                          "2026-06-31T00:00:00.000Z"]),
})
nonces = field(["n", "x" * 64, "~ !"], ["", "é", "x" * 65, "a\x00b"])


@settings(max_examples=400, deadline=None)
@given(trade_values, nonces, field(["ab" * 32], ["AB" * 32]))
def test_the_fast_path_accepts_exactly_what_the_field_checks_accept(values, nonce, tx_id):
    tx = {"type": "trade", "nonce": nonce, "body": values, "tx_id": tx_id}

    def accepted(obj: dict) -> bool:
        try:
            parse_transaction(obj)
        except SchemaError:
            return False
        return True

    verdict = accepted(tx)
    assert verdict == accepted(_SlowDict(tx))
    event("accepted" if verdict else "rejected")
