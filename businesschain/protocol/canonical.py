"""Canonical JSON, `CJ(v)` of ECP/1 §1.

RFC 8785 (JCS) restricted to objects with ASCII keys, strings, integers with `abs(n) < 2**53`,
booleans, null and arrays. For that subset JCS is exactly
`json.dumps(v, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")`:
ASCII keys sort the same by UTF-16 code unit and by code point, Python escapes exactly `"`, `\\`
and the C0 controls (`\\b \\f \\n \\r \\t`, the rest as lowercase `\\u00xx`) as JCS does, and
integers print the same.

`canonical_json` checks its input and raises `CanonicalJSONError` with a JSON pointer;
`canonical_json_unchecked` skips the walk for data the schema pass has already validated
(`schemas.parse_block` guarantees that for every transaction body and header it returns).
Both call the C encoder directly, which is about twice as fast as `json.dumps` with keywords.
"""

from __future__ import annotations

import json
import json.encoder
import re
from collections.abc import Callable, Iterator
from typing import Any, Final

#: Integers must satisfy `abs(n) < MAX_SAFE_INTEGER_BOUND` (2**53).
MAX_SAFE_INTEGER_BOUND: Final = 2**53
#: Deepest nesting `canonical_json` accepts (an implementation limit; ECP/1 objects are shallow).
MAX_DEPTH: Final = 128

_SURROGATE_RE: Final = re.compile("[\ud800-\udfff]")


class CanonicalJSONError(ValueError):
    """A value outside the canonical-JSON subset; `path` is a JSON pointer into the value."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path or '(root)'}: {message}")
        self.path = path
        self.message = message


class JSONFloat:
    """A JSON number with a fraction or exponent, kept as the text it was sent in.

    ECP/1 forbids floats in hashed objects. `schemas.load_json` parses them into this marker so
    that the schema pass can point at each one instead of failing on the first.
    """

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return f"JSONFloat({self.text!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, JSONFloat) and other.text == self.text

    def __hash__(self) -> int:
        return hash(("JSONFloat", self.text))


FLOAT_MESSAGE: Final = "floats are forbidden; send decimals as strings"


def json_pointer(*parts: str | int) -> str:
    """RFC 6901 pointer from reference tokens (`~` → `~0`, `/` → `~1`)."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def _reject_default(value: Any) -> Any:
    raise TypeError(f"unsupported type {type(value).__name__}")


def _make_encoder() -> Callable[[Any], str]:
    c_make_encoder = getattr(json.encoder, "c_make_encoder", None)
    if c_make_encoder is None:  # pragma: no cover - CPython always has the accelerator
        encoder = json.JSONEncoder(ensure_ascii=False, sort_keys=True, separators=(",", ":"),
                                   allow_nan=False, check_circular=False, default=_reject_default)
        return encoder.encode
    # (markers, default, encoder, indent, key_separator, item_separator, sort_keys, skipkeys, allow_nan)
    iterencode = c_make_encoder(None, _reject_default, json.encoder.encode_basestring, None,
                                ":", ",", True, False, False)
    return lambda value: "".join(iterencode(value, 0))


_encode: Final = _make_encoder()


class _Invalid(Exception):
    """Internal: carries the message up while each frame prepends its reference token."""

    def __init__(self, message: str) -> None:
        self.message = message
        self.parts: list[str | int] = []


def _check(value: Any, depth: int) -> None:
    kind = type(value)
    if kind is dict or (kind is not list and isinstance(value, dict)):
        if depth >= MAX_DEPTH:
            raise _Invalid("nested too deeply")
        for key, item in value.items():
            if not isinstance(key, str):
                error = _Invalid(f"object keys must be strings, not {type(key).__name__}")
                error.parts.append(repr(key))
                raise error
            if not key.isascii():
                error = _Invalid("object keys must be ASCII")
                error.parts.append(key)
                raise error
            item_kind = type(item)
            if item_kind is str or item_kind is bool or item is None:
                continue
            try:
                _check(item, depth + 1)
            except _Invalid as error:
                error.parts.append(key)
                raise
        return
    if kind is list or kind is tuple or isinstance(value, (list, tuple)):
        if depth >= MAX_DEPTH:
            raise _Invalid("nested too deeply")
        for index, item in enumerate(value):
            item_kind = type(item)
            if item_kind is str or item_kind is bool or item is None:
                continue
            try:
                _check(item, depth + 1)
            except _Invalid as error:
                error.parts.append(index)
                raise
        return
    if kind is str or kind is bool or value is None:
        return
    if kind is int or (isinstance(value, int) and not isinstance(value, bool)):
        if not -MAX_SAFE_INTEGER_BOUND < value < MAX_SAFE_INTEGER_BOUND:
            raise _Invalid("integers must satisfy abs(n) < 2**53")
        return
    if isinstance(value, str):
        return
    if isinstance(value, (float, JSONFloat)):
        raise _Invalid(FLOAT_MESSAGE)
    raise _Invalid(f"unsupported type {kind.__name__}")


def check_canonical(value: Any) -> None:
    """Raise `CanonicalJSONError` unless `value` is in the canonical-JSON subset.

    Lone surrogates are found by `canonical_json` when it encodes; this walk leaves them alone.
    """
    try:
        _check(value, 0)
    except _Invalid as error:
        raise CanonicalJSONError(json_pointer(*reversed(error.parts)), error.message) from None


_Where = tuple[str | int, ...]


def _walk_strings(value: Any) -> Iterator[tuple[_Where, str]]:
    """Every string (keys included) in `value` with its location; iterative, any depth."""
    stack: list[tuple[_Where, Any]] = [((), value)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, str):
            yield where, item
        elif isinstance(item, dict):
            for key, sub in item.items():
                if isinstance(key, str):
                    yield (*where, key), key
                stack.append(((*where, key), sub))
        elif isinstance(item, (list, tuple)):
            stack.extend(((*where, index), sub) for index, sub in enumerate(item))


def lone_surrogate_pointers(value: Any) -> list[str]:
    """JSON pointers to strings (or keys) holding lone surrogates, which UTF-8 cannot encode."""
    found = [json_pointer(*where) for where, text in _walk_strings(value)
             if not text.isascii() and _SURROGATE_RE.search(text)]
    return sorted(set(found))


def _encode_utf8(text: str, value: Any) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        pointers = lone_surrogate_pointers(value)
        raise CanonicalJSONError(pointers[0] if pointers else "",
                                 "strings must not contain lone surrogates") from None


def canonical_json(value: Any) -> bytes:
    """CJ(value): check the value, then serialise it canonically as UTF-8."""
    check_canonical(value)
    try:
        text = _encode(value)
    except RecursionError:  # only when the caller is already deep in the stack
        raise CanonicalJSONError("", "nested too deeply") from None
    return _encode_utf8(text, value)


def canonical_json_unchecked(value: Any) -> bytes:
    """CJ(value) for data already known to be in the subset (e.g. validated by `schemas`).

    Floats, big integers or non-ASCII keys are NOT rejected here and would produce bytes that are
    not canonical; unsupported types and lone surrogates still raise `CanonicalJSONError`.
    """
    try:
        text = _encode(value)
    except (TypeError, ValueError, RecursionError):
        check_canonical(value)  # raises with a pointer
        raise CanonicalJSONError("", "not serialisable as canonical JSON") from None
    return _encode_utf8(text, value)
