"""RFC 9162 §2.1 Merkle trees with SM3 in place of SHA-256 (ECP/1 §1).

    MTH({})      = SM3("")
    leaf hash    = SM3(0x00 ‖ leaf)
    inner node   = SM3(0x01 ‖ left ‖ right)
    MTH(D[n])    = SM3(0x01 ‖ MTH(D[0:k]) ‖ MTH(D[k:n])), k the largest power of two < n

Everything here works level by level: pair neighbours, carry an unpaired last node up unchanged.
That builds exactly the RFC's left-balanced tree (the left subtree at every split is the largest
complete subtree), so roots and audit paths are identical to the recursive definition, without
recursion and with one tight loop per level.

Cost is dominated by SM3 calls through hashlib (one `copy` of a pre-seeded context, one
`update`, one `digest` per node). A root or a one-shot inclusion proof over n leaf hashes takes
n − 1 node hashes: an audit path's siblings together cover every leaf but one, so computing "only
the needed subtrees" cannot save work. For many proofs over one tree build a `MerkleTree` once
(all levels kept, proofs are then O(log n) lookups).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Final

HASH_SIZE: Final = 32
EMPTY_ROOT: Final = hashlib.new("sm3").digest()  # MTH({}) = SM3("")

_LEAF_CONTEXT: Final = hashlib.new("sm3", b"\x00")
_NODE_CONTEXT: Final = hashlib.new("sm3", b"\x01")


def leaf_hash(data: bytes) -> bytes:
    """SM3(0x00 ‖ data)."""
    h = _LEAF_CONTEXT.copy()
    h.update(data)
    return h.digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SM3(0x01 ‖ left ‖ right)."""
    h = _NODE_CONTEXT.copy()
    h.update(left + right)
    return h.digest()


def leaf_hashes(leaves: Sequence[bytes]) -> list[bytes]:
    """[SM3(0x00 ‖ leaf) for leaf in leaves], in one tight loop."""
    new = _LEAF_CONTEXT.copy
    out: list[bytes] = []
    append = out.append
    for data in leaves:
        h = new()
        h.update(data)
        append(h.digest())
    return out


def _next_level(level: Sequence[bytes]) -> list[bytes]:
    """Pair neighbours; an unpaired last node moves up unchanged."""
    new = _NODE_CONTEXT.copy
    out: list[bytes] = []
    append = out.append
    pairs = iter(level)
    for left, right in zip(pairs, pairs, strict=False):  # stops before an unpaired last node
        h = new()
        h.update(left + right)
        append(h.digest())
    if len(level) & 1:
        append(level[-1])
    return out


def root_from_leaf_hashes(hashes: Sequence[bytes]) -> bytes:
    """MTH of a list whose leaf hashes are `hashes` (each SM3(0x00 ‖ leaf))."""
    if not hashes:
        return EMPTY_ROOT
    level = hashes
    while len(level) > 1:
        level = _next_level(level)
    return level[0]


def root(leaves: Sequence[bytes]) -> bytes:
    """MTH over raw leaves."""
    return root_from_leaf_hashes(leaf_hashes(leaves))


def inclusion_proof(index: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    """RFC 9162 §2.1.3.1 audit path PATH(index, D[n]) from the stored leaf hashes, leaf upwards."""
    size = len(leaf_hashes)
    if not 0 <= index < size:
        raise IndexError(f"leaf index {index} is outside a tree of {size} leaves")
    path: list[bytes] = []
    level: Sequence[bytes] = leaf_hashes
    while len(level) > 1:
        sibling = index ^ 1
        if sibling < len(level):
            path.append(level[sibling])
        level = _next_level(level)
        index >>= 1
    return path


def verify_inclusion(leaf_hash: bytes, index: int, tree_size: int, path: Sequence[bytes],
                     root: bytes) -> bool:
    """RFC 9162 §2.1.3.2: does `path` prove `leaf_hash` at `index` in the tree of `tree_size`?"""
    if not 0 <= index < tree_size or len(leaf_hash) != HASH_SIZE or len(root) != HASH_SIZE:
        return False
    fn, sn = index, tree_size - 1
    r = leaf_hash
    for p in path:
        if sn == 0 or len(p) != HASH_SIZE:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


class MerkleTree:
    """A tree built once with every level kept: `root` and O(log n) `inclusion_proof(i)`.

    Memory is about twice the leaf hashes (2n × 32-byte bytes objects); use it when one tree
    answers many proofs (e.g. every receipt of one supervision block).
    """

    __slots__ = ("levels",)

    def __init__(self, leaf_hashes: Sequence[bytes]) -> None:
        levels: list[Sequence[bytes]] = [leaf_hashes]
        while len(levels[-1]) > 1:
            levels.append(_next_level(levels[-1]))
        self.levels = levels

    @classmethod
    def from_leaves(cls, leaves: Sequence[bytes]) -> MerkleTree:
        return cls(leaf_hashes(leaves))

    def __len__(self) -> int:
        return len(self.levels[0])

    @property
    def root(self) -> bytes:
        return self.levels[-1][0] if self.levels[0] else EMPTY_ROOT

    def inclusion_proof(self, index: int) -> list[bytes]:
        size = len(self.levels[0])
        if not 0 <= index < size:
            raise IndexError(f"leaf index {index} is outside a tree of {size} leaves")
        path: list[bytes] = []
        for level in self.levels[:-1]:
            sibling = index ^ 1
            if sibling < len(level):
                path.append(level[sibling])
            index >>= 1
        return path


# --- chunked proofs -------------------------------------------------------------------------------
# With a power-of-two chunk size, every RFC 9162 split point of a tree over n leaves falls on a
# chunk boundary (the largest power of two below n is chunk × the largest power of two below the
# number of chunks). So the tree is the tree over the chunks' roots with each chunk's own subtree
# below it, and an audit path is the path inside the chunk followed by the path among chunk roots.

CHUNK_LEAVES = 256


def chunk_roots(leaf_hashes: Sequence[bytes], chunk: int = CHUNK_LEAVES) -> list[bytes]:
    """The Merkle Tree Hash of each consecutive `chunk`-leaf run (the last may be shorter)."""
    return [root_from_leaf_hashes(leaf_hashes[i:i + chunk]) for i in range(0, len(leaf_hashes), chunk)]


def inclusion_proof_chunked(index: int, chunk_leaf_hashes: Sequence[bytes], roots: Sequence[bytes],
                            chunk: int = CHUNK_LEAVES) -> list[bytes]:
    """The RFC 9162 audit path of leaf `index` from only its chunk's leaf hashes and every chunk's
    root: the same path `inclusion_proof` gives over all the leaves."""
    if chunk & (chunk - 1) or chunk < 1:
        raise ValueError("the chunk size must be a power of two")
    position = index // chunk
    inner = inclusion_proof(index - position * chunk, chunk_leaf_hashes)
    return inner + (inclusion_proof(position, roots) if len(roots) > 1 else [])
