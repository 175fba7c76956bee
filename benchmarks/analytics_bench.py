"""Benchmarks for the pure analytics (run: `.venv/bin/python benchmarks/analytics_bench.py`).

Prints figures as `name: value unit`. `bench_ownership` builds a synthetic ownership graph of
1,000,000 holdings with circular holdings and measures the full integrated ownership matrix plus the
beneficial owners of every organisation, then puts pure-networkx path enumeration beside it.
"""

from __future__ import annotations

import os
import resource
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from supervision.analytics.ownership import (  # noqa: E402 - needs the project root on sys.path
    ORG,
    PERSON,
    OwnershipGraph,
    Role,
    beneficial_owners_all,
    integrated_matrix,
)

EDGES = 1_000_000
N_ORGS = 400_000
N_PERSONS = 300_000
LAYERS = (0.03, 0.07, 0.12, 0.18, 0.25, 0.35)  # share of orgs per layer, top (holding groups) first
PERSON_SLOT = 0.55  # chance a holder slot goes to a natural person
CROSS_2 = 0.03  # orgs that hold back a stake in one of their org holders (2-cycles)
CROSS_3 = 0.01  # 3-cycles: an org holds a stake in its holder's holder
CLUSTERS, CLUSTER_SIZE = 20, 60  # 系族-style groups with dense cross-holdings (one SCC each)
NX_BUDGET_S = 20.0


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def line(name: str, value: object, unit: str = "") -> None:
    print(f"{name}: {value} {unit}".rstrip(), flush=True)


@dataclass
class Synthetic:
    ids: list[str]
    kinds: np.ndarray
    holder: np.ndarray
    issuer: np.ndarray
    shares: np.ndarray
    total: np.ndarray


def synthetic_graph(seed: int = 20240501) -> Synthetic:
    """Layered holdings: persons and upper-layer orgs hold lower-layer orgs; every org's holders sum
    to 55–97 % (the rest is free float) and cross-holdings spend part of what is left."""
    rng = np.random.default_rng(seed)
    n = N_ORGS + N_PERSONS
    layer_of = np.repeat(np.arange(len(LAYERS)), np.round(np.array(LAYERS) * N_ORGS).astype(int))[:N_ORGS]
    layer_start = np.searchsorted(layer_of, np.arange(len(LAYERS)))
    # Holder slots per org, scaled so the total lands near EDGES once cycles are added.
    slots = 1 + rng.poisson(1.45, N_ORGS)
    issuer = np.repeat(np.arange(N_ORGS), slots)
    to_person = (rng.random(issuer.size) < PERSON_SLOT) | (layer_of[issuer] == 0)
    # Persons: a long tail of entrepreneurs holding many companies.
    person = N_ORGS + (N_PERSONS * rng.random(issuer.size) ** 2.0).astype(np.int64)
    # Org holders come from strictly upper layers, mostly the layer just above.
    upper_layer = np.maximum(layer_of[issuer] - 1 - rng.geometric(0.6, issuer.size) + 1, 0)
    lo = layer_start[upper_layer]
    hi = np.r_[layer_start[1:], N_ORGS][upper_layer]
    org_holder = lo + (rng.random(issuer.size) * (hi - lo)).astype(np.int64)
    holder = np.where(to_person, person, org_holder)
    key = np.unique(holder * n + issuer)
    holder, issuer = key // n, key % n
    # Fractions: Dirichlet-like weights scaled to a held total per org of 55–97 %.
    w = rng.gamma(0.7, size=issuer.size)
    held = rng.uniform(0.55, 0.97, N_ORGS)
    frac = w / np.bincount(issuer, weights=w, minlength=N_ORGS)[issuer] * held[issuer]
    room = 1 - held  # per org, what cross-holdings may still take

    extra_h: list[np.ndarray] = []
    extra_i: list[np.ndarray] = []
    extra_f: list[np.ndarray] = []
    org_edges = np.flatnonzero(holder < N_ORGS)
    # 2-cycles: issuer y holds back a stake in its org holder x (x must have room).
    pick = rng.choice(org_edges, int(CROSS_2 * N_ORGS), replace=False)
    x, y = holder[pick], issuer[pick]
    extra_h.append(y)
    extra_i.append(x)
    extra_f.append(room[x] * rng.uniform(0.05, 0.3, x.size))
    # 3-cycles: z holds a stake in x where x → y → z.
    first_org_holder = np.full(N_ORGS, -1)
    first_org_holder[issuer[org_edges][::-1]] = holder[org_edges][::-1]
    pick = rng.choice(org_edges, int(CROSS_3 * N_ORGS), replace=False)
    y, z = holder[pick], issuer[pick]
    x = first_org_holder[y]
    ok = x >= 0
    extra_h.append(z[ok])
    extra_i.append(x[ok])
    extra_f.append(room[x[ok]] * rng.uniform(0.05, 0.3, int(ok.sum())))
    # Clusters: members of a group each hold small stakes in four others.
    for _ in range(CLUSTERS):
        members = rng.choice(np.arange(layer_start[2], layer_start[4]), CLUSTER_SIZE, replace=False)
        for _ in range(4):
            a, b = members, rng.permutation(members)
            keep = a != b
            extra_h.append(a[keep])
            extra_i.append(b[keep])
            extra_f.append(room[b[keep]] * 0.1)
    holder = np.concatenate([holder, *extra_h])
    issuer = np.concatenate([issuer, *extra_i])
    frac = np.concatenate([frac, *extra_f])
    key, first = np.unique(holder * n + issuer, return_index=True)
    holder, issuer, frac = key // n, key % n, frac[first]
    # Trim to exactly EDGES holdings (dropping random person slots keeps every cycle).
    if holder.size > EDGES:
        droppable = np.flatnonzero(holder >= N_ORGS)
        drop = rng.choice(droppable, holder.size - EDGES, replace=False)
        keep = np.ones(holder.size, dtype=bool)
        keep[drop] = False
        holder, issuer, frac = holder[keep], issuer[keep], frac[keep]
    # Scale back any org pushed over 99 % by the extra stakes, then turn fractions into share counts.
    total_in = np.bincount(issuer, weights=frac, minlength=n)
    frac = frac * np.minimum(1.0, 0.99 / np.maximum(total_in[issuer], 1e-12))
    total = rng.integers(10_000_000, 2_000_000_000, n)[issuer]
    shares = np.maximum((frac * total).astype(np.int64), 1)
    ids = [f"ORG{i:07d}" for i in range(N_ORGS)] + [f"P{i:07d}" for i in range(N_PERSONS)]
    kinds = np.r_[np.full(N_ORGS, ORG), np.full(N_PERSONS, PERSON)].astype(np.int8)
    return Synthetic(ids, kinds, holder, issuer, shares, total)


def _path_enumeration(G: object, target: int) -> dict[int, float]:
    """Integrated ownership of one target the naive way: sum over simple paths (cycles ignored)."""
    import networkx as nx

    result: dict[int, float] = {}
    for source in nx.ancestors(G, target):
        total = 0.0
        for path in nx.all_simple_paths(G, source, target):
            product = 1.0
            for a, b in zip(path, path[1:], strict=False):
                product *= G[a][b]["weight"]
            total += product
        result[source] = total
    return result


def bench_ownership() -> None:
    t0 = time.perf_counter()
    syn = synthetic_graph()
    line("ownership.generate", f"{time.perf_counter() - t0:.2f}", "s")

    t0 = time.perf_counter()
    graph = OwnershipGraph.from_arrays(syn.ids, syn.kinds, syn.holder, syn.issuer, syn.shares, syn.total)
    t_build = time.perf_counter() - t0
    t0 = time.perf_counter()
    s = graph.structure
    t_structure = time.perf_counter() - t0
    t0 = time.perf_counter()
    M = integrated_matrix(graph)
    t_matrix = time.perf_counter() - t0
    roles = [Role(syn.ids[i], syn.ids[N_ORGS + k], "actual_controller", True)
             for k, i in enumerate(range(0, N_ORGS, 400))]
    t0 = time.perf_counter()
    owners = beneficial_owners_all(graph, roles, matrix=M)
    t_bo = time.perf_counter() - t0
    sizes = np.bincount(s.labels)
    cyclic_sizes = sizes[s.cyclic]
    total = t_build + t_structure + t_matrix + t_bo
    line("ownership.edges", graph.W.nnz, "holdings")
    line("ownership.entities", graph.n, f"({N_ORGS} orgs, {N_PERSONS} persons)")
    line("ownership.org_org_edges", s.A.nnz, "holdings")
    line("ownership.cyclic_blocks", int(s.cyclic.sum()), f"SCCs (largest {int(cyclic_sizes.max())} orgs)")
    line("ownership.levels", len(s.bounds) - 1, "condensation levels")
    line("ownership.computed", "full M = P(I-A)^-1 for every holder x every org, then the beneficial "
         "owners (>= 25 % or actual controller) of every org")
    line("ownership.integrated_nnz", M.nnz, "nonzero (holder, org) pairs")
    line("ownership.orgs_with_beneficial_owners", len(owners), "orgs")
    line("ownership.time_build_graph", f"{t_build:.2f}", "s")
    line("ownership.time_scc_levels", f"{t_structure:.2f}", "s")
    line("ownership.time_integrated_matrix", f"{t_matrix:.2f}", "s")
    line("ownership.time_beneficial_owners_all", f"{t_bo:.2f}", "s")
    line("ownership.time_total_sparse", f"{total:.2f}", "s (limit 10 s)")
    line("ownership.peak_rss_sparse", f"{peak_rss_mib():.0f}", "MiB (ru_maxrss, incl. generator; limit 2048)")
    bench_networkx(graph, syn, M, total)


def bench_networkx(graph: OwnershipGraph, syn: Synthetic, M: object, sparse_total: float) -> None:
    import networkx as nx

    t0 = time.perf_counter()
    coo = graph.W.tocoo()
    G = nx.DiGraph()
    G.add_weighted_edges_from(zip(coo.row.tolist(), coo.col.tolist(), coo.data.tolist(), strict=True))
    t_nx_build = time.perf_counter() - t0
    line("networkx.time_build_digraph", f"{t_nx_build:.2f}", "s")

    rng = np.random.default_rng(7)
    s = graph.structure
    Mc = M.tocsc()  # type: ignore[attr-defined]

    def run(targets: np.ndarray, budget: float) -> tuple[int, float, float]:
        done, max_err, start = 0, 0.0, time.perf_counter()
        for t in targets.tolist():
            enum = _path_enumeration(G, t)
            col = Mc[:, t]
            exact = dict(zip(col.indices.tolist(), col.data.tolist(), strict=True))
            for k in set(enum) | set(exact):
                if k != t:
                    max_err = max(max_err, abs(enum.get(k, 0.0) - exact.get(k, 0.0)))
            done += 1
            if time.perf_counter() - start > budget:
                break
        return done, time.perf_counter() - start, max_err

    random_targets = rng.choice(s.org_idx, 5000, replace=False)
    done, spent, err = run(random_targets, NX_BUDGET_S * 0.75)
    per = spent / done
    extrapolated = t_nx_build + per * len(s.org_idx)
    line("networkx.sample_random_orgs", done, f"orgs in {spent:.1f} s (budget {NX_BUDGET_S * 0.75:.0f} s)")
    line("networkx.time_per_org", f"{per * 1000:.2f}", "ms (ancestors + all_simple_paths per ancestor)")
    line("networkx.time_all_orgs_extrapolated", f"{extrapolated:.0f}",
         f"s (= build + {len(s.org_idx)} orgs x mean per org; NOT measured end to end)")
    line("networkx.ratio_vs_sparse", f"{extrapolated / sparse_total:.0f}", "x slower (extrapolated / measured)")
    line("networkx.max_error_random_sample", f"{err * 100:.4f}", "percentage points vs sparse solve")
    cyclic_orgs = s.org_idx[np.flatnonzero(s.cyclic[s.labels])]
    cyc_targets = rng.choice(cyclic_orgs, min(2000, len(cyclic_orgs)), replace=False)
    done, spent, err = run(cyc_targets, NX_BUDGET_S * 0.25)
    line("networkx.max_error_orgs_in_cycles", f"{err * 100:.2f}",
         f"percentage points vs sparse solve ({done} orgs inside circular holdings; simple paths miss cycles)")
    line("process.peak_rss", f"{peak_rss_mib():.0f}", "MiB (incl. networkx graph)")


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    bench_ownership()
