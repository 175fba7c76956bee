"""Exact reference answers in `fractions.Fraction` for small ownership graphs (tests only)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from fractions import Fraction

from supervision.analytics.ownership import Holding


def exact_integrated(ids: Sequence[str], holdings: Sequence[Holding]) -> dict[tuple[str, str], Fraction]:
    """M = W (I − W)⁻¹ by Gauss–Jordan elimination in Fractions; only nonzero entries returned."""
    n = len(ids)
    pos = {x: i for i, x in enumerate(ids)}
    W = [[Fraction(0)] * n for _ in range(n)]
    for h in holdings:
        if h.shares:
            W[pos[h.holder]][pos[h.issuer]] = Fraction(h.shares, h.total_shares)
    # Augmented [I − W | I] → [I | (I − W)⁻¹]
    aug = [[Fraction(int(i == j)) - W[i][j] for j in range(n)] + [Fraction(int(i == j)) for j in range(n)]
           for i in range(n)]
    for col in range(n):
        pivot = next(r for r in range(col, n) if aug[r][col] != 0)
        aug[col], aug[pivot] = aug[pivot], aug[col]
        lead = aug[col][col]
        aug[col] = [v / lead for v in aug[col]]
        for r in range(n):
            if r != col and aug[r][col] != 0:
                f = aug[r][col]
                aug[r] = [a - f * b for a, b in zip(aug[r], aug[col], strict=True)]
    inverse = [row[n:] for row in aug]
    # (I − W)⁻¹ = I + M
    return {(ids[i], ids[j]): inverse[i][j] - int(i == j)
            for i, j in itertools.product(range(n), range(n)) if inverse[i][j] - int(i == j) != 0}


def simple_path_sum(holdings: Sequence[Holding], holder: str, org: str) -> Fraction:
    """What naive path enumeration gives: the sum over *simple* paths only (cycles ignored)."""
    out: dict[str, list[tuple[str, Fraction]]] = {}
    for h in holdings:
        if h.shares and h.holder != h.issuer:
            out.setdefault(h.holder, []).append((h.issuer, Fraction(h.shares, h.total_shares)))

    def walk(node: str, seen: frozenset[str]) -> Fraction:
        total = Fraction(0)
        for nxt, f in out.get(node, ()):
            if nxt == org:
                total += f
            elif nxt not in seen:
                total += f * walk(nxt, seen | {nxt})
        return total

    return walk(holder, frozenset({holder}))
