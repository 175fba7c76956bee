"""Chunked audit paths equal RFC 9162 audit paths over the whole tree."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from businesschain.protocol import merkle
from gm.sm3 import sm3_digest


def leaves(n: int) -> list[bytes]:
    return [merkle.leaf_hash(sm3_digest(i.to_bytes(4, "big"))) for i in range(n)]


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_chunked_path_equals_the_whole_tree_path(data):
    chunk = data.draw(st.sampled_from([1, 2, 4, 8, 16]))
    n = data.draw(st.integers(min_value=1, max_value=200))
    index = data.draw(st.integers(min_value=0, max_value=n - 1))
    hashes = leaves(n)
    roots = merkle.chunk_roots(hashes, chunk)
    start = index - index % chunk
    path = merkle.inclusion_proof_chunked(index, hashes[start:start + chunk], roots, chunk)
    assert path == merkle.inclusion_proof(index, hashes)
    assert merkle.verify_inclusion(hashes[index], index, n, path, merkle.root_from_leaf_hashes(hashes))


def test_full_size_chunks_of_a_sealed_block_size():
    hashes = leaves(1_300)  # five full chunks of 256 and a partial one
    roots = merkle.chunk_roots(hashes)
    assert len(roots) == 6 and merkle.root_from_leaf_hashes(roots) == merkle.root_from_leaf_hashes(hashes)
    for index in (0, 255, 256, 700, 1_279, 1_280, 1_299):
        start = index - index % 256
        chunked = merkle.inclusion_proof_chunked(index, hashes[start:start + 256], roots)
        assert chunked == merkle.inclusion_proof(index, hashes)


def test_chunk_size_must_be_a_power_of_two():
    with pytest.raises(ValueError, match="power of two"):
        merkle.inclusion_proof_chunked(0, leaves(3), leaves(1), chunk=3)
