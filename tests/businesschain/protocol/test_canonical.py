"""Canonical JSON (ECP/1 §1): the JCS subset, equal to Python's sorted compact dumps."""

from __future__ import annotations

import json
from collections import OrderedDict
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from businesschain.protocol.canonical import (
    CanonicalJSONError,
    JSONFloat,
    canonical_json,
    canonical_json_unchecked,
    json_pointer,
    lone_surrogate_pointers,
)


def reference(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


texts = st.text(alphabet=st.characters(codec="utf-8"), max_size=20)
ascii_keys = st.text(alphabet=st.characters(max_codepoint=127), max_size=8)
scalars = (st.none() | st.booleans() | st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1) | texts)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=5)
                      | st.dictionaries(ascii_keys, inner, max_size=5), max_leaves=40)


@settings(max_examples=400, deadline=None)
@given(values)
def test_canonical_json_equals_sorted_compact_python_dumps_for_every_valid_value(value):
    assert canonical_json(value) == reference(value)
    assert canonical_json_unchecked(value) == reference(value)
    assert json.loads(canonical_json(value)) == value


def test_known_answer_sorting_escaping_and_utf8():
    value = {"b": 1, "a": [True, None, False, "é\n\u001f\"\\/\u2028", -42], "": {}, "A": []}
    expected = b'{"":{},"A":[],"a":[true,null,false,"\xc3\xa9\\n\\u001f\\"\\\\/\xe2\x80\xa8",-42],"b":1}'
    assert canonical_json(value) == expected


def test_rfc_8785_control_character_escapes_are_lowercase_short_forms():
    assert canonical_json("\b\f\n\r\t\u0000\u007f") == b'"\\b\\f\\n\\r\\t\\u0000\x7f"'


def test_integer_bounds_are_exclusive_at_2_pow_53():
    assert canonical_json([2**53 - 1, -(2**53) + 1]) == b"[9007199254740991,-9007199254740991]"
    with pytest.raises(CanonicalJSONError) as exc:
        canonical_json({"a": [0, 2**53]})
    assert exc.value.path == "/a/1"
    with pytest.raises(CanonicalJSONError):
        canonical_json(-(2**53))


@pytest.mark.parametrize(("value", "path", "fragment"), [
    ({"price": 1.5}, "/price", "floats are forbidden"),
    ({"a": {"b": [1, JSONFloat("1e3")]}}, "/a/b/1", "floats are forbidden"),
    (float("nan"), "", "floats are forbidden"),
    ({"é": 1}, "/é", "ASCII"),
    ({1: "x"}, "/1", "keys must be strings"),
    ({"a/b~c": {"x": Decimal("1")}}, "/a~1b~0c/x", "unsupported type Decimal"),
    ({"s": {1, 2}}, "/s", "unsupported type set"),
    ({"b": b"x"}, "/b", "unsupported type bytes"),
])
def test_values_outside_the_subset_raise_with_a_json_pointer(value, path, fragment):
    with pytest.raises(CanonicalJSONError) as exc:
        canonical_json(value)
    assert exc.value.path == path
    assert fragment in exc.value.message


def test_lone_surrogates_are_rejected_with_their_pointer_in_both_modes():
    value = {"ok": "😀", "list": ["fine", "bad\ud800"]}
    for encode in (canonical_json, canonical_json_unchecked):
        with pytest.raises(CanonicalJSONError) as exc:
            encode(value)
        assert exc.value.path == "/list/1"
    assert lone_surrogate_pointers({"k\udfff": 1, "x": ["\udc00"]}) == ["/k\udfff", "/x/0"]


def test_deep_nesting_and_cycles_raise_instead_of_recursing_forever():
    deep: list = []
    node = deep
    for _ in range(300):
        node.append([])
        node = node[0]
    with pytest.raises(CanonicalJSONError, match="nested too deeply"):
        canonical_json(deep)
    cycle: dict = {}
    cycle["self"] = cycle
    with pytest.raises(CanonicalJSONError, match="nested too deeply"):
        canonical_json(cycle)


def test_tuples_and_mapping_subclasses_serialise_like_lists_and_dicts():
    assert canonical_json(OrderedDict([("b", (1, 2)), ("a", "x")])) == b'{"a":"x","b":[1,2]}'


def test_unchecked_still_refuses_unserialisable_types():
    with pytest.raises(CanonicalJSONError) as exc:
        canonical_json_unchecked({"x": [object()]})
    assert exc.value.path == "/x/0"


def test_json_pointer_escapes_tilde_and_slash():
    assert json_pointer("a/b", "m~n", 3) == "/a~1b/m~0n/3"
    assert json_pointer() == ""
