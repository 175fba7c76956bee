"""RFC 9162 Merkle trees with SM3, checked against a direct transcription of the RFC's recursion."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from businesschain.protocol import merkle


def sm3(data: bytes) -> bytes:
    return hashlib.new("sm3", data).digest()


def ref_mth(leaves: list[bytes]) -> bytes:
    """RFC 9162 §2.1.1, word for word."""
    n = len(leaves)
    if n == 0:
        return sm3(b"")
    if n == 1:
        return sm3(b"\x00" + leaves[0])
    k = 1
    while k * 2 < n:
        k *= 2
    return sm3(b"\x01" + ref_mth(leaves[:k]) + ref_mth(leaves[k:]))


def ref_path(m: int, leaves: list[bytes]) -> list[bytes]:
    """RFC 9162 §2.1.3.1 PATH(m, D[n])."""
    n = len(leaves)
    if n == 1:
        return []
    k = 1
    while k * 2 < n:
        k *= 2
    if m < k:
        return [*ref_path(m, leaves[:k]), ref_mth(leaves[k:])]
    return [*ref_path(m - k, leaves[k:]), ref_mth(leaves[:k])]


def leaves_of(n: int) -> list[bytes]:
    return [b"leaf-%d" % i for i in range(n)]


def test_sm3_backend_matches_the_gb_t_32905_known_answer():
    assert sm3(b"abc").hex() == "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"


def test_empty_tree_hash_is_sm3_of_the_empty_string():
    assert merkle.root([]) == sm3(b"") == merkle.EMPTY_ROOT
    assert merkle.root_from_leaf_hashes([]) == sm3(b"")
    assert merkle.MerkleTree([]).root == sm3(b"")


def test_leaf_and_node_hashes_use_the_rfc_9162_prefixes():
    assert merkle.leaf_hash(b"x") == sm3(b"\x00x")
    assert merkle.node_hash(b"a" * 32, b"b" * 32) == sm3(b"\x01" + b"a" * 32 + b"b" * 32)


def test_small_trees_match_the_recursive_definition_and_never_duplicate_odd_leaves():
    for n in range(1, 70):
        assert merkle.root(leaves_of(n)) == ref_mth(leaves_of(n)), n
    a, b, c = (sm3(b"\x00" + x) for x in leaves_of(3))
    assert merkle.root(leaves_of(3)) == sm3(b"\x01" + sm3(b"\x01" + a + b) + c)


def test_inclusion_proof_rejects_an_index_outside_the_tree():
    hashes = merkle.leaf_hashes(leaves_of(3))
    with pytest.raises(IndexError):
        merkle.inclusion_proof(3, hashes)
    with pytest.raises(IndexError):
        merkle.inclusion_proof(-1, hashes)
    with pytest.raises(IndexError):
        merkle.MerkleTree(hashes).inclusion_proof(3)


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=1, max_value=300).flatmap(
    lambda n: st.tuples(st.just(n), st.integers(min_value=0, max_value=n - 1))))
def test_every_proof_equals_the_rfc_path_and_verifies(case):
    n, index = case
    leaves = leaves_of(n)
    hashes = merkle.leaf_hashes(leaves)
    root = merkle.root_from_leaf_hashes(hashes)
    path = merkle.inclusion_proof(index, hashes)
    assert root == ref_mth(leaves)
    assert path == ref_path(index, leaves)
    assert merkle.MerkleTree(hashes).inclusion_proof(index) == path
    assert merkle.verify_inclusion(hashes[index], index, n, path, root)


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=1, max_value=300).flatmap(
    lambda n: st.tuples(st.just(n), st.integers(min_value=0, max_value=n - 1))), st.data())
def test_a_mutated_proof_fails(case, data):
    n, index = case
    hashes = merkle.leaf_hashes(leaves_of(n))
    root = merkle.root_from_leaf_hashes(hashes)
    path = merkle.inclusion_proof(index, hashes)
    leaf = hashes[index]
    flip = data.draw(st.integers(min_value=0, max_value=255))

    def flipped(h: bytes) -> bytes:
        return h[:flip % 32] + bytes([h[flip % 32] ^ (1 << (flip % 8))]) + h[flip % 32 + 1:]

    assert not merkle.verify_inclusion(flipped(leaf), index, n, path, root)
    assert not merkle.verify_inclusion(leaf, index, n, path, flipped(root))
    assert not merkle.verify_inclusion(leaf, index, n, [*path, root], root)
    assert not merkle.verify_inclusion(leaf, n, n, path, root)
    assert not merkle.verify_inclusion(leaf, -1, n, path, root)
    if path:
        which = data.draw(st.integers(min_value=0, max_value=len(path) - 1))
        bad = list(path)
        bad[which] = flipped(bad[which])
        assert not merkle.verify_inclusion(leaf, index, n, bad, root)
        assert not merkle.verify_inclusion(leaf, index, n, path[:-1], root)
        assert not merkle.verify_inclusion(leaf, index, n, [*path[:which], *path[which + 1:]], root)
    if index ^ 1 < n:
        assert not merkle.verify_inclusion(leaf, index ^ 1, n, path, root)


def test_verify_rejects_malformed_hash_lengths():
    hashes = merkle.leaf_hashes(leaves_of(4))
    root = merkle.root_from_leaf_hashes(hashes)
    path = merkle.inclusion_proof(1, hashes)
    assert merkle.verify_inclusion(hashes[1], 1, 4, path, root)
    assert not merkle.verify_inclusion(hashes[1], 1, 4, [path[0] + b"\x00", path[1]], root)
    assert not merkle.verify_inclusion(hashes[1][:31], 1, 4, path, root)


def test_single_leaf_tree_has_an_empty_path():
    h = merkle.leaf_hash(b"only")
    assert merkle.root([b"only"]) == h
    assert merkle.inclusion_proof(0, [h]) == []
    assert merkle.verify_inclusion(h, 0, 1, [], h)
    assert not merkle.verify_inclusion(h, 0, 2, [], h)


def test_large_tree_proofs_agree_between_one_shot_and_stored_levels():
    n = (1 << 14) + 3
    hashes = merkle.leaf_hashes([i.to_bytes(4, "big") for i in range(n)])
    tree = merkle.MerkleTree(hashes)
    assert len(tree) == n
    assert tree.root == merkle.root_from_leaf_hashes(hashes)
    for index in (0, 1, 8191, 8192, 16383, 16384, n - 1):
        path = merkle.inclusion_proof(index, hashes)
        assert path == tree.inclusion_proof(index)
        assert merkle.verify_inclusion(hashes[index], index, n, path, tree.root)
