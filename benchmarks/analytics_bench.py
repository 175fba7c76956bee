"""Benchmarks for the pure analytics (run: `.venv/bin/python benchmarks/analytics_bench.py`).

Prints figures as `name: value unit`. `bench_ownership` builds a synthetic ownership graph of
1,000,000 holdings with circular holdings and measures the integrated ownership matrix plus the
beneficial owners of every organisation, then puts pure-networkx path enumeration beside it.
The same matrix with entries below 1e-12 pruned is timed beside it. `--no-networkx` skips the
networkx comparison; `--only ownership` or `--only per-block` runs one of the two parts (the
per-block part is `bench_block_task`, on PostgreSQL); `--profile FILE` writes a cProfile of the
timed per-block analyses (read it with `python -m pstats FILE`); `--keep` leaves the scratch
database `bench_analytics` in place for inspection (EXPLAIN ANALYZE of the analysis queries).
"""

from __future__ import annotations

import cProfile
import itertools
import os
import resource
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import networkx as nx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from supervision.analytics.ownership import (
    ORG,
    PERSON,
    OwnershipGraph,
    Role,
    beneficial_owners_all,
    integrated_error_bound,
    integrated_matrix,
)

EDGES = 1_000_000
N_ORGS = 400_000
N_PERSONS = 300_000
LAYERS = (0.03, 0.07, 0.12, 0.18, 0.25, 0.35)  # share of orgs per layer, top (holding groups) first
PERSON_SLOT = 0.55  # chance a holder slot goes to a natural person
CROSS_2 = 0.03  # orgs that hold back a stake in one of their org holders (2-cycles)
CROSS_3 = 0.01  # 3-cycles: an org holds a stake in its holder's holder
CLUSTERS, CLUSTER_SIZES = 20, (10, 80)  # 系族-style groups with dense cross-holdings (one SCC each)
PRUNE = 1e-12  # integrated entries below this are dropped (see integrated_matrix)
NX_BUDGET_S = 15.0  # networkx sample on random orgs
NX_CYCLE_BUDGET_S = 5.0  # networkx sample on orgs inside small cycles
NX_TARGET_CAP_S = 2.0  # one org's enumeration is stopped after this


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
    to 55–97 % (the rest is free float) and cross-holdings spend part of what is left: 2- and
    3-org cycles along existing holdings, and 20 business groups cross-holding among themselves."""
    rng = np.random.default_rng(seed)
    n = N_ORGS + N_PERSONS
    layer_of = np.repeat(np.arange(len(LAYERS)), np.round(np.array(LAYERS) * N_ORGS).astype(int))[:N_ORGS]
    layer_start = np.searchsorted(layer_of, np.arange(len(LAYERS)))
    # Holder slots per org, scaled so the total lands near EDGES once cycles are added.
    slots = 1 + rng.poisson(1.5, N_ORGS)
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
    # Business groups (系族): 10–80 layer-3 orgs, each holding small stakes in three fellow members.
    # One layer only, so that two groups do not merge into one SCC through the layered holdings.
    for size in rng.integers(CLUSTER_SIZES[0], CLUSTER_SIZES[1] + 1, CLUSTERS):
        members = rng.choice(np.arange(layer_start[3], layer_start[4]), size, replace=False)
        for _ in range(3):
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


class _Timeout(Exception):
    pass


def _alarm(signum: int, frame: object) -> None:
    raise _Timeout


def _path_enumeration(G: nx.DiGraph, target: int) -> dict[int, float]:
    """Integrated ownership of one target the naive way: the sum over simple paths (cycles ignored),
    with nx.all_simple_paths on the target's ancestor subgraph (unrestricted, every source's DFS
    would wander through everything downstream of it)."""
    import networkx as nx

    ancestors = nx.ancestors(G, target)
    sub = G.subgraph(ancestors | {target})
    result: dict[int, float] = {}
    for source in ancestors:
        total = 0.0
        for path in nx.all_simple_paths(sub, source, target):
            product = 1.0
            for a, b in itertools.pairwise(path):
                product *= sub[a][b]["weight"]
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
    line("ownership.cyclic_blocks", int(s.cyclic.sum()),
         f"SCCs ({int((cyclic_sizes <= 3).sum())} of <= 3 orgs, {int((cyclic_sizes > 64).sum())} of > 64, "
         f"largest {int(cyclic_sizes.max())})")
    line("ownership.levels", len(s.bounds) - 1, "condensation levels")
    line("ownership.computed", "every nonzero entry of M = P(I-A)^-1 (all holders x all orgs, exact up to "
         "float rounding), then the beneficial owners (>= 25 % or actual controller) of every org")
    line("ownership.integrated_nnz", M.nnz, "(holder, org) entries")
    line("ownership.orgs_with_beneficial_owners", len(owners), "orgs")
    line("ownership.beneficial_owner_pairs", sum(len(v) for v in owners.values()), "(person, org) pairs")
    line("ownership.time_build_graph", f"{t_build:.2f}", "s")
    line("ownership.time_scc_levels", f"{t_structure:.2f}", "s")
    line("ownership.time_integrated_matrix", f"{t_matrix:.2f}", "s")
    line("ownership.time_beneficial_owners_all", f"{t_bo:.2f}", "s")
    line("ownership.time_total_sparse", f"{total:.2f}",
         "s (build + SCC/levels + full matrix + owners of every org; limit 10 s)")
    line("ownership.peak_rss_sparse", f"{peak_rss_mib():.0f}",
         "MiB (ru_maxrss so far, incl. the generator's arrays; limit 2048)")

    # The pruned sweep: what keeps graphs with large cross-holding groups in memory.
    t0 = time.perf_counter()
    pruned = integrated_matrix(graph, prune=PRUNE)
    t_pruned = time.perf_counter() - t0
    shortfall = (M - pruned).max()
    line("ownership.pruned_time_integrated_matrix", f"{t_pruned:.2f}", f"s (prune={PRUNE:g})")
    line("ownership.pruned_integrated_nnz", pruned.nnz, "(holder, org) entries")
    line("ownership.pruned_max_shortfall", f"{shortfall:.1e}",
         f"(measured max of exact - pruned; stated bound {integrated_error_bound(graph, PRUNE):.1e})")
    line("ownership.peak_rss_sparse_with_pruned", f"{peak_rss_mib():.0f}", "MiB")
    del pruned
    if "--no-networkx" not in sys.argv:
        bench_networkx(graph, M, total)


def bench_networkx(graph: OwnershipGraph, M: object, sparse_total: float) -> None:
    import networkx as nx

    t0 = time.perf_counter()
    coo = graph.W.tocoo()
    G = nx.DiGraph()
    G.add_nodes_from(range(graph.n))
    G.add_weighted_edges_from(zip(coo.row.tolist(), coo.col.tolist(), coo.data.tolist(), strict=True))
    t_nx_build = time.perf_counter() - t0
    line("networkx.time_build_digraph", f"{t_nx_build:.2f}", "s")

    rng = np.random.default_rng(7)
    s = graph.structure
    Mc = M.tocsc()  # type: ignore[attr-defined]
    signal.signal(signal.SIGALRM, _alarm)

    def run(targets: np.ndarray, budget: float) -> tuple[int, int, float, float]:
        done = timeouts = 0
        max_err, start = 0.0, time.perf_counter()
        for t in targets.tolist():
            signal.setitimer(signal.ITIMER_REAL, NX_TARGET_CAP_S)
            try:
                enum = _path_enumeration(G, t)
            except _Timeout:
                timeouts += 1
                continue
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
                done += 1
            col = Mc[:, t]
            exact = dict(zip(col.indices.tolist(), col.data.tolist(), strict=True))
            for k in set(enum) | set(exact):
                if k != t:
                    max_err = max(max_err, abs(enum.get(k, 0.0) - exact.get(k, 0.0)))
            if time.perf_counter() - start > budget:
                break
        return done, timeouts, time.perf_counter() - start, max_err

    random_targets = rng.choice(s.org_idx, 20_000, replace=False)
    done, timeouts, spent, err = run(random_targets, NX_BUDGET_S)
    per = spent / done
    extrapolated = t_nx_build + per * len(s.org_idx)
    line("networkx.sample_random_orgs", done,
         f"orgs in {spent:.1f} s ({timeouts} stopped at the {NX_TARGET_CAP_S:g} s cap per org and "
         f"counted as {NX_TARGET_CAP_S:g} s)")
    line("networkx.time_per_org", f"{per * 1000:.2f}",
         "ms mean (nx.ancestors, then nx.all_simple_paths per ancestor on the ancestor subgraph)")
    line("networkx.time_all_orgs_extrapolated", f"{extrapolated:.0f}",
         f"s (= DiGraph build + {len(s.org_idx)} orgs x mean per org; extrapolated, not run; "
         f"a lower bound since capped orgs count as {NX_TARGET_CAP_S:g} s)")
    line("networkx.ratio_vs_sparse", f"{extrapolated / sparse_total:.0f}",
         "x the measured sparse total (extrapolated networkx / measured sparse)")
    line("networkx.max_error_random_sample", f"{err * 100:.6f}",
         "percentage points vs sparse solve (finished orgs)")
    small_cycles = np.flatnonzero(s.cyclic[s.labels] & (np.bincount(s.labels)[s.labels] <= 3))
    cyc_targets = s.org_idx[rng.choice(small_cycles, min(2000, small_cycles.size), replace=False)]
    done, timeouts, spent, err = run(cyc_targets, NX_CYCLE_BUDGET_S)
    line("networkx.max_error_orgs_in_cycles", f"{err * 100:.2f}",
         f"percentage points vs sparse solve ({done - timeouts} orgs inside 2-3-org circular holdings: "
         "simple paths miss the cycles)")
    line("process.peak_rss", f"{peak_rss_mib():.0f}", "MiB (incl. the networkx graph)")


# --- the per-block analytics task on PostgreSQL (Django part) ---------------------------------

BLOCK_TASK_BLOCKS = 50
BLOCK_TASK_SIZE = 1000
BLOCK_TASK_DB = "bench_analytics"
BLOCK_TASK_LIMIT_MS = 100.0


def bench_block_task() -> None:
    """`block_analyse` for 1,000-transaction blocks on PostgreSQL with a realistic index.

    A scratch database (`bench_analytics` on the server of DATABASE_URL, default
    postgresql://postgres@127.0.0.1:5432/test, dropped at the end) is migrated and filled through
    the real ingestion service with the simulator's market on three chains (about 10,000 entities,
    15,000 accounts, holdings, roles, concert parties) and the structure is built (untimed). Then
    BLOCK_TASK_BLOCKS blocks of BLOCK_TASK_SIZE transactions (trades with the simulator's planted
    patterns) are ingested one by one (untimed) and each is analysed as the worker would; prints
    p50/p95/max of the analysis time and the queries per block."""
    import statistics
    import urllib.parse
    from datetime import UTC, datetime, timedelta

    import psycopg

    server = os.environ.get("DATABASE_URL") or "postgresql://postgres@127.0.0.1:5432/test"
    if not server.startswith("postgres"):
        line("block_task.skipped", "DATABASE_URL is not PostgreSQL")
        return
    admin = psycopg.connect(server, autocommit=True)
    admin.execute(f"DROP DATABASE IF EXISTS {BLOCK_TASK_DB} WITH (FORCE)")
    admin.execute(f"CREATE DATABASE {BLOCK_TASK_DB}")
    scratch = urllib.parse.urlunsplit(urllib.parse.urlsplit(server)._replace(path=f"/{BLOCK_TASK_DB}"))
    os.environ.update(DATABASE_URL=scratch, DJANGO_SETTINGS_MODULE="config.settings", DJANGO_DEBUG="0",
                      SECRET_KEY="analytics-bench-" + "k" * 40, LOG_LEVEL="WARNING")
    try:
        import django

        django.setup()
        from django.core.management import call_command
        from django.db import connection

        from businesschain.ingest import block_submit
        from businesschain.models import Account as AccountRow
        from businesschain.models import ChainToken, Entity, Holding, Role
        from businesschain.registry import chain_register
        from businesschain.simulator.chain import SimulatedChain, generate_node_keys
        from businesschain.simulator.client import encode_block
        from businesschain.simulator.stream import ChainStream
        from businesschain.simulator.world import ALL_CHAINS, build_world
        from supervision.surveillance import analytics_recompute, block_analyse

        call_command("migrate", verbosity=0)
        seed = 20261121
        world = build_world(seed, groups=150, retail=8000)
        chains: dict[str, tuple[SimulatedChain, ChainToken]] = {}
        start = datetime.now(UTC) - timedelta(hours=2)
        t0 = time.perf_counter()
        for chain_id in ALL_CHAINS:
            keys = generate_node_keys(chain_id)
            chain_register(chain_id=chain_id, name=chain_id, quorum=3,
                           nodes={n: k.public_key().to_hex() for n, k in keys.items()})
            chain = SimulatedChain(chain_id, keys, rng=random_for(chain_id))
            chains[chain_id] = (chain, ChainToken.objects.get(chain_id=chain_id))
            for specs in ChainStream(world, chain_id, seed=seed).setup_blocks(start):
                _bench_submit(block_submit, chains[chain_id], specs, start, encode_block)
        analytics_recompute()
        line("block_task.index", f"{Entity.objects.count()} entities, {AccountRow.objects.count()} accounts, "
             f"{Holding.objects.count()} holdings, {Role.objects.count()} roles",
             f"(loaded and structured in {time.perf_counter() - t0:.1f} s, untimed)")

        stream = ChainStream(world, "sse", seed=seed, block_size=BLOCK_TASK_SIZE, pattern_rate=0.5,
                             patterns=("wash_trade", "trade_ring", "threshold_crossing",
                                       "related_party_trade"))
        chain, token = chains["sse"]
        profile_to = _option("--profile")
        profiler = cProfile.Profile() if profile_to else None
        times: list[float] = []
        queries: list[int] = []
        stages: dict[str, list[float]] = {}
        at = start + timedelta(minutes=10)
        for _ in range(BLOCK_TASK_BLOCKS):
            at += timedelta(seconds=2)
            plan = stream.plan_block(chain.next_height, at)
            height = _bench_submit(block_submit, (chain, token), plan.transactions, at, encode_block)
            executed = [0]
            with connection.execute_wrapper(_counting(executed)):
                if profiler is not None:
                    profiler.enable()
                t0 = time.perf_counter()
                result = block_analyse(chain_id="sse", height=height)
                times.append((time.perf_counter() - t0) * 1000)
                if profiler is not None:
                    profiler.disable()
            queries.append(executed[0])
            for stage, ms in result.timings.items():
                stages.setdefault(stage, []).append(ms)
        times.sort()
        p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
        line("block_task.blocks", len(times), f"blocks of {BLOCK_TASK_SIZE} transactions (PostgreSQL)")
        line("block_task.p50", f"{statistics.median(times):.1f}", "ms")
        line("block_task.p95", f"{p95:.1f}", f"ms (limit {BLOCK_TASK_LIMIT_MS:.0f})")
        line("block_task.max", f"{times[-1]:.1f}", "ms")
        line("block_task.queries", f"{min(queries)}-{max(queries)}", "per block (alerts raised add theirs)")
        line("block_task.stages_p50", ", ".join(f"{k} {statistics.median(v):.1f}" for k, v in stages.items()),
             "ms")
        line("block_task.stages_max", ", ".join(f"{k} {max(v):.1f}" for k, v in stages.items()), "ms")
        line("block_task.load_average", f"{os.getloadavg()[0]:.2f}", f"(1 min, {os.cpu_count()} CPUs)")
        if profiler is not None and profile_to:
            profiler.dump_stats(profile_to)
            line("block_task.profile", profile_to, "(cProfile of the timed analyses)")
    finally:
        from django.db import connections

        connections.close_all()
        if "--keep" in sys.argv[1:]:
            line("block_task.kept", scratch)
        else:
            admin.execute(f"DROP DATABASE IF EXISTS {BLOCK_TASK_DB} WITH (FORCE)")
        admin.close()


def _counting(executed: list[int]) -> object:
    """A database execute wrapper counting the queries of the analysis's own connection: unlike
    `CaptureQueriesContext` it does not switch on the debug cursor, which formats and records every
    query (the worker runs without it)."""
    def wrapper(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        executed[0] += 1
        return execute(sql, params, many, context)
    return wrapper


def random_for(name: str) -> object:
    import random

    return random.Random(name)


def _bench_submit(block_submit: object, chain_token: tuple[object, object], specs: object, at: object,
                  encode_block: object) -> int:
    from datetime import timedelta

    chain, token = chain_token
    block = chain.build_block(specs, at)  # type: ignore[attr-defined]
    outcome = block_submit(chain_id=chain.chain_id, body=encode_block(block), token=token,  # type: ignore[attr-defined,operator]
                           now=at + timedelta(seconds=1))  # type: ignore[operator]
    if not outcome.accepted:
        raise SystemExit(f"block refused: {outcome.as_json()}")
    chain.accept(block)  # type: ignore[attr-defined]
    return int(block["header"]["height"])


def _option(name: str) -> str | None:
    """The value after `name` on the command line (`--profile out.prof`), if given."""
    argv = sys.argv[1:]
    found = [argv[k + 1] for k, arg in enumerate(argv[:-1]) if arg == name]
    return found[-1] if found else None


def _parts(argv: list[str]) -> set[str]:
    """The parts named by `--only ownership|per-block` (repeatable), or both."""
    parts = {"ownership", "per-block"}
    chosen = {argv[k + 1] for k, arg in enumerate(argv[:-1]) if arg == "--only"}
    chosen |= {arg.split("=", 1)[1] for arg in argv if arg.startswith("--only=")}
    if chosen - parts:
        raise SystemExit(f"--only takes one of {', '.join(sorted(parts))}")
    return chosen or parts


if __name__ == "__main__":
    selected = _parts(sys.argv[1:])
    if "ownership" in selected:
        bench_ownership()
    if "per-block" in selected:
        bench_block_task()
