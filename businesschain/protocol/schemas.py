"""JSON text and schema of ECP/1 §3–4: blocks and transactions, with errors as JSON pointers.

`parse_block` reports every error it finds (up to `MAX_ERRORS`) in one `SchemaError`, each as a
`FieldError(path, message)` whose path is a JSON pointer relative to the block
(`/transactions/3/body/price`). It checks form only: hashes, tx_count, tx_root and signatures
are verification steps that run later in the order ECP/1 §5 fixes (see `hashing`).

A block that passes holds only canonical-JSON values in its header and transaction bodies (no
floats, ASCII keys, integers below 2**53, no lone surrogates), so `hashing` may serialise them with
`canonical_json_unchecked`.
"""

from __future__ import annotations

import json
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from businesschain.errors import InvalidInput

from .canonical import (
    FLOAT_MESSAGE,
    MAX_SAFE_INTEGER_BOUND,
    JSONFloat,
    json_pointer,
    lone_surrogate_pointers,
)
from .identifiers import (
    ALL_ENTITY_FORMS,
    ORG_FORMS,
    PERSON_FORMS,
    entity_id_problem,
    entity_id_type,
    is_other_entity,
    is_prc_id,
    is_uscc,
)
from .times import parse_time, time_problem

MAX_ERRORS: Final = 100
MAX_BLOCK_TRANSACTIONS: Final = 10_000
MAX_BODY_BYTES: Final = 32 * 1024 * 1024
GENESIS_PREV_HASH: Final = "0" * 64
MAX_NAME_LENGTH: Final = 200
MAX_NODE_LENGTH: Final = 64

HEADER_KEYS: Final = ("chain", "height", "prev_hash", "timestamp", "tx_count", "tx_root")
BLOCK_KEYS: Final = ("header", "block_hash", "transactions", "signatures")
TRANSACTION_KEYS: Final = ("type", "nonce", "body", "tx_id")
SIGNATURE_KEYS: Final = ("node", "sig")

DECIMAL_PATTERN: Final = r"(0|[1-9][0-9]*)(\.[0-9]{1,8})?"
COUNT_PATTERN: Final = r"(0|[1-9][0-9]{0,17})"


# --- results and errors ---------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class FieldError:
    path: str  # JSON pointer, "" for the whole document
    message: str

    def as_json(self) -> dict[str, str]:
        return {"path": self.path, "message": self.message}


class SchemaError(InvalidInput):
    """400 `invalid_block`: JSON or schema errors, rendered `{"code", "detail", "errors", "index"?}`."""

    http_status = 400
    default_code = "invalid_block"

    def __init__(self, errors: Sequence[FieldError], *, index: int | None = None,
                 truncated: bool = False) -> None:
        self.errors: list[FieldError] = list(errors)
        self.index = index
        self.truncated = truncated
        first = self.errors[0] if self.errors else FieldError("", "invalid")
        more = len(self.errors) - 1
        detail = f"{first.path or '(document)'}: {first.message}"
        if more or truncated:
            detail += f" (and {more}{'+' if truncated else ''} more)"
        extra: dict[str, Any] = {"errors": [e.as_json() for e in self.errors]}
        if truncated:
            extra["truncated"] = True
        if index is not None:
            extra["index"] = index
        super().__init__(detail, code="invalid_block", **extra)

    def with_index(self, index: int) -> SchemaError:
        """The same errors, for the block at `index` of a batch."""
        return SchemaError(self.errors, index=index, truncated=self.truncated)


@dataclass(frozen=True, slots=True)
class Transaction:
    type: str
    nonce: str
    body: dict[str, Any]
    tx_id: str
    raw: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Header:
    chain: str
    height: int
    prev_hash: str
    timestamp: datetime  # aware, UTC
    timestamp_text: str
    tx_count: int
    tx_root: str


@dataclass(frozen=True, slots=True)
class Signature:
    node: str
    sig: str  # hex as sent (raw r‖s or DER)


@dataclass(frozen=True, slots=True)
class Block:
    header: Header
    header_raw: dict[str, Any]
    block_hash: str
    transactions: list[Transaction]
    signatures: list[Signature]
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


class _TooMany(Exception):
    pass


class _Errors:
    __slots__ = ("items", "truncated")

    def __init__(self) -> None:
        self.items: list[FieldError] = []
        self.truncated = False

    def add(self, path: str, message: str) -> None:
        if len(self.items) >= MAX_ERRORS:
            self.truncated = True
            raise _TooMany
        self.items.append(FieldError(path, message))

    def raise_if_any(self) -> None:
        if self.items:
            raise SchemaError(self.items, truncated=self.truncated)


# --- JSON text ------------------------------------------------------------------------------------

class _DuplicateKey(ValueError):
    pass


class _NonFinite(ValueError):
    pass


def _object_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return obj


def _non_finite(text: str) -> Any:
    raise _NonFinite(text)


_DECODER: Final = json.JSONDecoder(object_pairs_hook=_object_pairs, parse_float=JSONFloat,
                                   parse_constant=_non_finite)
_SURROGATE_ESCAPE_RE: Final = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def _invalid_json(message: str) -> SchemaError:
    return SchemaError([FieldError("", f"invalid JSON: {message}")])


def load_json(body: bytes | bytearray | memoryview | str) -> Any:
    """Parse a request body as strict JSON (UTF-8, no duplicate keys, no NaN/Infinity).

    Numbers with a fraction or exponent become `JSONFloat` markers, which the schema pass reports
    where they stand ("floats are forbidden; send decimals as strings").
    """
    if isinstance(body, str):
        text = body
    else:
        try:
            text = bytes(body).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _invalid_json(f"not UTF-8 ({exc.reason} at byte {exc.start})") from None
    try:
        value = _DECODER.decode(text)
    except _DuplicateKey as exc:
        raise _invalid_json(f"duplicate key {exc.args[0]!r}") from None
    except _NonFinite as exc:
        raise _invalid_json(f"{exc.args[0]} is not a JSON number") from None
    except json.JSONDecodeError as exc:
        raise _invalid_json(f"{exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise _invalid_json("nested too deeply") from None
    except ValueError as exc:  # e.g. an integer literal longer than Python's 4300-digit limit
        raise _invalid_json(str(exc)) from None
    if "\\u" in text and _SURROGATE_ESCAPE_RE.search(text):
        pointers = lone_surrogate_pointers(value)
        if pointers:
            raise SchemaError([FieldError(p, "strings must not contain lone surrogates (invalid Unicode)")
                               for p in pointers[:MAX_ERRORS]], truncated=len(pointers) > MAX_ERRORS)
    return value


# --- field checks: each returns None when valid, else a message (or sub-path errors) ---------------

Problem = str | list[tuple[str, str]] | None
Check = Callable[[Any], Problem]

_SURROGATE_RE: Final = re.compile("[\ud800-\udfff]")


def json_type(value: Any) -> str:
    """The JSON name of a Python value's type, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, (float, JSONFloat)):
        return "number with a fraction or exponent"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _wrong_type(value: Any, expected: str) -> str:
    if isinstance(value, (float, JSONFloat)):
        return FLOAT_MESSAGE
    return f"expected {expected}, got {json_type(value)}"


# check → a regex matching exactly the strings it accepts (none of them contains NUL); the
# transaction fast path joins a body's values with NUL and matches them in one go.
_FAST_PATTERNS: dict[Check, str] = {}


def _pattern(regex: str, expected: str) -> Check:
    fullmatch = re.compile(regex).fullmatch
    message = f"expected {expected}"

    def check(value: Any) -> Problem:
        if isinstance(value, str):
            return None if fullmatch(value) else message
        return _wrong_type(value, expected)

    _FAST_PATTERNS[check] = f"(?:{regex})"
    return check


def _enum(*choices: str) -> Check:
    allowed = frozenset(choices)
    message = "expected one of " + ", ".join(choices)

    def check(value: Any) -> Problem:
        if isinstance(value, str):
            return None if value in allowed else message
        return _wrong_type(value, "a string")

    _FAST_PATTERNS[check] = "(?:" + "|".join(re.escape(c) for c in choices) + ")"
    return check


def _entity(allowed: frozenset[str]) -> Check:
    def check(value: Any) -> Problem:
        return entity_id_problem(value, allowed)

    return check


def _has_lone_surrogate(text: str) -> bool:
    return not text.isascii() and _SURROGATE_RE.search(text) is not None


def _text(*, min_length: int = 0, max_length: int | None = None) -> Check:
    if max_length is not None:
        expected = f"a string of {min_length}-{max_length} characters"
    elif min_length:
        expected = "a non-empty string"
    else:
        expected = "a string"

    def check(value: Any) -> Problem:
        if not isinstance(value, str):
            return _wrong_type(value, expected)
        if len(value) < min_length or (max_length is not None and len(value) > max_length):
            return f"expected {expected}"
        if _has_lone_surrogate(value):
            return "strings must not contain lone surrogates (invalid Unicode)"
        return None

    return check


def _integer(value: Any) -> Problem:
    if isinstance(value, int) and not isinstance(value, bool):
        return None if 0 <= value < MAX_SAFE_INTEGER_BOUND else "expected an integer 0 <= n < 2**53"
    return _wrong_type(value, "an integer")


def _boolean(value: Any) -> Problem:
    return None if isinstance(value, bool) else _wrong_type(value, "a boolean")


def _time(value: Any) -> Problem:
    if not isinstance(value, str):
        return _wrong_type(value, "a time string")
    return time_problem(value)


# Days 29-31 and year 0000 are left to the slow path, which builds the datetime.
_FAST_PATTERNS[_time] = (r"(?:(?!0000)[0-9]{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|1[0-9]|2[0-8])"
                         r"T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]\.[0-9]{3}Z)")


def _string_map(value: Any) -> Problem:
    """`fields` of evidence: an object of string → string (keys ASCII, as in every hashed object)."""
    if not isinstance(value, dict):
        return _wrong_type(value, "an object of string to string")
    problems: list[tuple[str, str]] = []
    for key, item in value.items():
        where = json_pointer(str(key))
        if not isinstance(key, str) or not key.isascii():
            problems.append((where, "keys must be ASCII strings"))
        elif not isinstance(item, str):
            problems.append((where, _wrong_type(item, "a string")))
        elif _has_lone_surrogate(item):
            problems.append((where, "strings must not contain lone surrogates (invalid Unicode)"))
    return problems or None


def _parties(value: Any) -> Problem:
    if not isinstance(value, list):
        return _wrong_type(value, "an array of at least 2 entity ids")
    problems: list[tuple[str, str]] = []
    first_seen: dict[str, int] = {}
    for index, item in enumerate(value):
        problem = entity_id_problem(item, ALL_ENTITY_FORMS)
        if problem is not None:
            problems.append((f"/{index}", problem))
        elif item in first_seen:
            problems.append((f"/{index}", f"duplicate of /{first_seen[item]}; parties must be distinct"))
        else:
            first_seen[item] = index
    if len(value) < 2:
        problems.append(("", "expected at least 2 distinct parties"))
    return problems or None


HEX64: Final = _pattern(r"[0-9a-f]{64}", "64 lowercase hex characters")
_SIG: Final = _pattern(r"(?:[0-9a-fA-F]{2})+", "a hex string (an even number of hex digits)")
_NONCE: Final = _pattern(r"[\x20-\x7e]{1,64}", "1-64 printable ASCII characters")
_CHAIN: Final = _pattern(r"[a-z][a-z0-9-]{1,31}", "a chain id matching ^[a-z][a-z0-9-]{1,31}$")
_ACCOUNT: Final = _pattern(r"[A-Z0-9]{6,20}", "an account matching ^[A-Z0-9]{6,20}$")
_SECURITY: Final = _pattern(r"[0-9]{6}", "a security code of 6 digits")
_COUNT: Final = _pattern(COUNT_PATTERN, f"a count string matching ^{COUNT_PATTERN}$")
_DECIMAL: Final = _pattern(DECIMAL_PATTERN, f"a decimal string matching ^{DECIMAL_PATTERN}$")
_ORG: Final = _entity(ORG_FORMS)
_PERSON: Final = _entity(PERSON_FORMS)
_ANY_ENTITY: Final = _entity(ALL_ENTITY_FORMS)
_NAME: Final = _text(min_length=1, max_length=MAX_NAME_LENGTH)
_NODE: Final = _text(min_length=1, max_length=MAX_NODE_LENGTH)
_STRING: Final = _text()

# type → {key: (check, required)}, in the order of ECP/1 §3.
BODY_SCHEMAS: Final[Mapping[str, Mapping[str, tuple[Check, bool]]]] = {
    "entity_register": {
        "id": (_ANY_ENTITY, True),
        "kind": (_enum("org", "person"), True),
        "name": (_NAME, True),
        "id_type": (_enum("USCC", "PRC_ID", "OTHER"), True),
    },
    "security_listing": {
        "security": (_SECURITY, True),
        "issuer": (_ORG, True),
        "name": (_NAME, True),
        "total_shares": (_COUNT, True),
    },
    "account_open": {
        "account": (_ACCOUNT, True),
        "holder": (_ANY_ENTITY, True),
        "broker": (_ORG, True),
    },
    "shareholding": {
        "issuer": (_ORG, True),
        "holder": (_ANY_ENTITY, True),
        "shares": (_COUNT, True),
        "total_shares": (_COUNT, True),
        "as_of": (_time, True),
    },
    "role": {
        "org": (_ORG, True),
        "person": (_PERSON, True),
        "role": (_enum("legal_rep", "director", "supervisor", "executive", "actual_controller",
                       "sponsor_rep"), True),
        "active": (_boolean, True),
    },
    "concert_party": {
        "issuer": (_ORG, True),
        "parties": (_parties, True),
        "active": (_boolean, True),
    },
    "trade": {
        "security": (_SECURITY, True),
        "buyer": (_ACCOUNT, True),
        "seller": (_ACCOUNT, True),
        "quantity": (_COUNT, True),
        "price": (_DECIMAL, True),
        "executed_at": (_time, True),
    },
    "transfer": {
        "security": (_SECURITY, True),
        "from": (_ACCOUNT, True),
        "to": (_ACCOUNT, True),
        "quantity": (_COUNT, True),
        "reason": (_enum("gift", "inheritance", "pledge", "court", "other"), True),
    },
    "disclosure": {
        "issuer": (_ORG, True),
        "holder": (_ANY_ENTITY, True),
        "kind": (_enum("shareholding_change", "periodic", "other"), True),
        "doc_sm3": (HEX64, True),
        "as_of": (_time, True),
    },
    "evidence": {
        "business_type": (_STRING, True),
        "reference": (_STRING, True),
        "doc_sm3": (HEX64, True),
        "fields": (_string_map, False),
    },
}
TRANSACTION_TYPES: Final = tuple(BODY_SCHEMAS)


@dataclass(frozen=True, slots=True)
class _FastPath:
    keys: frozenset[str]
    values: Callable[[dict[str, Any]], tuple[str, ...]]
    fullmatch: Callable[[str], re.Match[str] | None]


def _fast_path(schema: Mapping[str, tuple[Check, bool]]) -> _FastPath | None:
    """One regex over NUL-joined nonce, tx_id and body values, when every check has a pattern."""
    if not all(required and check in _FAST_PATTERNS for check, required in schema.values()):
        return None
    keys = tuple(schema)
    regex = "\x00".join([_FAST_PATTERNS[_NONCE], _FAST_PATTERNS[HEX64],
                          *(_FAST_PATTERNS[check] for check, _ in schema.values())])
    getter = operator.itemgetter(*keys)
    return _FastPath(frozenset(keys), (lambda body: tuple(getter(body))) if len(keys) == 1 else getter,
                     re.compile(regex).fullmatch)


_FAST_PATHS: Final = {tx_type: fast for tx_type, schema in BODY_SCHEMAS.items()
                      if (fast := _fast_path(schema)) is not None}
_TYPES_TEXT: Final = ", ".join(TRANSACTION_TYPES)
_ID_FORM_CHECKS: Final[Mapping[str, Callable[[object], bool]]] = {
    "USCC": is_uscc, "PRC_ID": is_prc_id, "OTHER": is_other_entity,
}


# --- structure ------------------------------------------------------------------------------------

def _report(errors: _Errors, path: str, problem: Problem) -> None:
    if isinstance(problem, str):
        errors.add(path, problem)
    elif problem:
        for sub, message in problem:
            errors.add(path + sub, message)


def _check_keys(obj: dict[Any, Any], keys: Sequence[str], path: str, errors: _Errors) -> None:
    """Missing and unknown keys of an object whose key set must be exactly `keys`."""
    for key in keys:
        if key not in obj:
            errors.add(f"{path}/{key}", "required")
    for key in obj:
        if key not in keys:
            errors.add(path + json_pointer(str(key)), "unknown key")


def _check_entity_register(body: dict[str, Any], path: str, errors: _Errors) -> None:
    """`id_type` agrees with the form of `id`, and `kind` with `id_type`."""
    id_type, kind, entity_id = body["id_type"], body["kind"], body["id"]
    if not _ID_FORM_CHECKS[id_type](entity_id):
        errors.add(f"{path}/id_type", f"id_type {id_type} does not match id, which is "
                                      f"{entity_id_type(entity_id)}")
    elif id_type not in (PERSON_FORMS if kind == "person" else ORG_FORMS):
        errors.add(f"{path}/kind", f"a {kind} cannot have id_type {id_type}")


def _check_body(tx_type: str, body: Any, path: str, errors: _Errors) -> None:
    if not isinstance(body, dict):
        errors.add(path, _wrong_type(body, "an object"))
        return
    schema = BODY_SCHEMAS[tx_type]
    before = len(errors.items)
    for key, (check, required) in schema.items():
        if key in body:
            problem = check(body[key])
            if problem is not None:
                _report(errors, f"{path}/{key}", problem)
        elif required:
            errors.add(f"{path}/{key}", "required")
    if not body.keys() <= schema.keys():
        for key in body:
            if key not in schema:
                errors.add(path + json_pointer(str(key)), f"unknown key for a {tx_type} body")
    if tx_type == "entity_register" and len(errors.items) == before:
        _check_entity_register(body, path, errors)


def _parse_transaction(obj: Any, path: str, errors: _Errors) -> Transaction | None:
    if type(obj) is dict and obj.keys() == _TRANSACTION_KEY_SET:
        tx_type: Any = obj["type"]
        fast = _FAST_PATHS.get(tx_type) if type(tx_type) is str else None
        body = obj["body"]
        if fast is not None and type(body) is dict and body.keys() == fast.keys:
            try:
                joined = "\x00".join((obj["nonce"], obj["tx_id"], *fast.values(body)))
            except TypeError:  # a value that is not a string: the slow path says which
                pass
            else:
                if fast.fullmatch(joined) is not None:
                    return Transaction(tx_type, obj["nonce"], body, obj["tx_id"], obj)
    if not isinstance(obj, dict):
        errors.add(path, _wrong_type(obj, "a transaction object"))
        return None
    before = len(errors.items)
    if obj.keys() != _TRANSACTION_KEY_SET:
        _check_keys(obj, TRANSACTION_KEYS, path, errors)
    tx_type = obj.get("type")
    if isinstance(tx_type, str) and tx_type in BODY_SCHEMAS:
        if "body" in obj:
            _check_body(tx_type, obj["body"], f"{path}/body", errors)
    elif "type" in obj:
        if isinstance(tx_type, str):
            errors.add(f"{path}/type", f"unknown transaction type; expected one of {_TYPES_TEXT}")
        else:
            errors.add(f"{path}/type", _wrong_type(tx_type, "a string"))
    for key, check in (("nonce", _NONCE), ("tx_id", HEX64)):
        if key in obj:
            problem = check(obj[key])
            if problem is not None:
                _report(errors, f"{path}/{key}", problem)
    if len(errors.items) != before:
        return None
    return Transaction(tx_type, obj["nonce"], obj["body"], obj["tx_id"], obj)


_TRANSACTION_KEY_SET: Final = frozenset(TRANSACTION_KEYS)
_HEADER_CHECKS: Final[Mapping[str, Check]] = {
    "chain": _CHAIN, "height": _integer, "prev_hash": HEX64, "timestamp": _time,
    "tx_count": _integer, "tx_root": HEX64,
}


def _parse_header(obj: Any, errors: _Errors) -> Header | None:
    path = "/header"
    if not isinstance(obj, dict):
        errors.add(path, _wrong_type(obj, "an object"))
        return None
    before = len(errors.items)
    _check_keys(obj, HEADER_KEYS, path, errors)
    for key, check in _HEADER_CHECKS.items():
        if key in obj:
            _report(errors, f"{path}/{key}", check(obj[key]))
    if len(errors.items) != before:
        return None
    timestamp = parse_time(obj["timestamp"])
    assert timestamp is not None
    return Header(chain=obj["chain"], height=obj["height"], prev_hash=obj["prev_hash"],
                  timestamp=timestamp, timestamp_text=obj["timestamp"], tx_count=obj["tx_count"],
                  tx_root=obj["tx_root"])


def _parse_signatures(value: Any, errors: _Errors) -> list[Signature]:
    path = "/signatures"
    if not isinstance(value, list):
        errors.add(path, _wrong_type(value, "an array"))
        return []
    out: list[Signature] = []
    for index, item in enumerate(value):
        where = f"{path}/{index}"
        if not isinstance(item, dict):
            errors.add(where, _wrong_type(item, "an object {\"node\", \"sig\"}"))
            continue
        before = len(errors.items)
        _check_keys(item, SIGNATURE_KEYS, where, errors)
        if "node" in item:
            _report(errors, f"{where}/node", _NODE(item["node"]))
        if "sig" in item:
            _report(errors, f"{where}/sig", _SIG(item["sig"]))
        if len(errors.items) == before:
            out.append(Signature(node=item["node"], sig=item["sig"]))
    return out


def _parse_block(obj: Any, errors: _Errors) -> Block | None:
    if not isinstance(obj, dict):
        errors.add("", _wrong_type(obj, "a block object"))
        return None
    _check_keys(obj, BLOCK_KEYS, "", errors)
    header = _parse_header(obj["header"], errors) if "header" in obj else None
    if "block_hash" in obj:
        _report(errors, "/block_hash", HEX64(obj["block_hash"]))
    transactions: list[Transaction] = []
    if "transactions" in obj:
        raw_transactions = obj["transactions"]
        if isinstance(raw_transactions, list):
            for index, item in enumerate(raw_transactions):
                tx = _parse_transaction(item, f"/transactions/{index}", errors)
                if tx is not None:
                    transactions.append(tx)
        else:
            errors.add("/transactions", _wrong_type(raw_transactions, "an array"))
    signatures = _parse_signatures(obj["signatures"], errors) if "signatures" in obj else []
    if errors.items or header is None:
        return None
    return Block(header=header, header_raw=obj["header"], block_hash=obj["block_hash"],
                 transactions=transactions, signatures=signatures, raw=obj)


# --- entry points ---------------------------------------------------------------------------------

def parse_block(obj: Any) -> Block:
    """Validate one block object; raise `SchemaError` listing every error found (≤ MAX_ERRORS)."""
    errors = _Errors()
    try:
        block = _parse_block(obj, errors)
    except _TooMany:
        block = None
    errors.raise_if_any()
    assert block is not None
    return block


def parse_transaction(obj: Any, path: str = "") -> Transaction:
    """Validate one transaction object; error pointers are prefixed with `path`."""
    errors = _Errors()
    try:
        tx = _parse_transaction(obj, path, errors)
    except _TooMany:
        tx = None
    errors.raise_if_any()
    assert tx is not None
    return tx


def parse_submission(payload: Any) -> list[Any]:
    """The raw block objects of a POST body: one block, or `{"blocks": [...]}` (non-empty).

    `payload` is the parsed JSON, or the body bytes (then parsed with `load_json`).
    """
    if isinstance(payload, (bytes, bytearray, memoryview)):
        payload = load_json(payload)
    if not isinstance(payload, dict):
        raise SchemaError([FieldError("", _wrong_type(payload, 'a block object or {"blocks": [...]}'))])
    if "blocks" not in payload:
        return [payload]
    errors = [FieldError(json_pointer(str(key)), "unknown key in a batch") for key in payload
              if key != "blocks"]
    blocks = payload["blocks"]
    if not isinstance(blocks, list):
        errors.insert(0, FieldError("/blocks", _wrong_type(blocks, "a non-empty array of blocks")))
    elif not blocks:
        errors.insert(0, FieldError("/blocks", "expected a non-empty array of blocks"))
    if errors:
        raise SchemaError(errors[:MAX_ERRORS], truncated=len(errors) > MAX_ERRORS)
    return blocks


def is_batch(payload: Any) -> bool:
    """Whether a parsed POST body is the `{"blocks": [...]}` form (errors then carry `index`)."""
    return isinstance(payload, dict) and "blocks" in payload


def parse_batch(payload: Any) -> list[Block]:
    """`parse_submission` then `parse_block` for each; a block's errors carry its `index` in a batch."""
    if isinstance(payload, (bytes, bytearray, memoryview)):
        payload = load_json(payload)
    raw_blocks = parse_submission(payload)
    batch = is_batch(payload)
    blocks: list[Block] = []
    for index, raw in enumerate(raw_blocks):
        try:
            blocks.append(parse_block(raw))
        except SchemaError as error:
            raise error.with_index(index) if batch else error from None
    return blocks


def transaction_count(raw_block: Any) -> int:
    """len(raw_block["transactions"]) when it is a list, else 0: the size check before the schema."""
    if isinstance(raw_block, dict):
        transactions = raw_block.get("transactions")
        if isinstance(transactions, list):
            return len(transactions)
    return 0
