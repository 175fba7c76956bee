"""ECP/1 ingestion throughput over HTTP, against the served application (uvicorn, no debug).

    DJANGO_DEBUG=1 .venv/bin/python benchmarks/ingest_bench.py [--database-url URL] [--blocks N]
        [--block-size 1000] [--workers 2] [--chains 3] [--sqlite-blocks M] [--no-sqlite]

For each database (PostgreSQL from --database-url or DATABASE_URL, then a temporary SQLite file):
create a scratch database (`bench_ingest` on the PostgreSQL server, dropped at the end), migrate it,
register the chains, start `uvicorn config.asgi:application --workers N` on it, send each chain's
world (untimed), pre-generate and sign `--blocks` blocks of `--block-size` trades per chain
(untimed), then POST them with one sequential client per chain, all chains at once. Prints the
sustained rate (transactions accepted / wall time), p50/p99 acceptance latency per block and, on
PostgreSQL, the raw COPY rate of the same transaction and trade rows into scratch copies of the
tables in the same run, and our rate as a fraction of it.

Target (issue 3): ≥ 20,000 tx/s sustained with p99 ≤ 250 ms per 1,000-tx block on PostgreSQL.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from businesschain.protocol.canonical import canonical_json  # noqa: E402
from businesschain.protocol.times import parse_time  # noqa: E402
from businesschain.simulator import CHAIN_NAMES  # noqa: E402
from businesschain.simulator.chain import SimulatedChain, generate_node_keys  # noqa: E402
from businesschain.simulator.client import ChainClient, encode_block  # noqa: E402
from businesschain.simulator.stream import ChainStream  # noqa: E402
from businesschain.simulator.world import build_world  # noqa: E402

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"
SCRATCH_DB = "bench_ingest"
PYTHON = sys.executable


@dataclass
class ChainLoad:
    chain_id: str
    api_key: str
    chain: SimulatedChain
    setup: list[bytes] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)
    blocks: list[dict[str, Any]] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    finished_at: float = 0.0
    errors: list[str] = field(default_factory=list)


@dataclass
class Result:
    label: str
    transactions: int
    seconds: float
    latencies: list[float]
    errors: list[str]
    copy_tx_per_s: float | None = None
    steady_tx_per_s: float | None = None
    load: tuple[float, float] = (0.0, 0.0)  # 1-minute load average before and after
    cpu: dict[str, float] = field(default_factory=dict)  # CPU seconds in the timed part, by process kind
    first_last_ms: tuple[float, float] = (0.0, 0.0)  # mean latency of each chain's first/last 10 %

    @property
    def tx_per_s(self) -> float:
        return self.transactions / self.seconds if self.seconds else 0.0


def quantile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_env(database_url: str) -> dict[str, str]:
    env = {**os.environ, "DATABASE_URL": database_url, "DJANGO_DEBUG": "0",
           "SECRET_KEY": "ingest-bench-" + "k" * 40, "SECURE_SSL_REDIRECT": "0",
           "ALLOWED_HOSTS": "127.0.0.1,localhost", "LOG_LEVEL": "WARNING", "PYTHONDONTWRITEBYTECODE": "1"}
    return env


def manage(database_url: str, *args: str) -> str:
    done = subprocess.run([PYTHON, str(ROOT / "manage.py"), *args], env=server_env(database_url),
                          capture_output=True, text=True, check=False, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"manage.py {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


# --- scratch databases ------------------------------------------------------------------------

@contextmanager
def postgres_scratch(server_url: str) -> Iterator[str]:
    import psycopg

    parts = urllib.parse.urlsplit(server_url)
    admin = psycopg.connect(server_url, autocommit=True)
    admin.execute(f"DROP DATABASE IF EXISTS {SCRATCH_DB}")
    admin.execute(f"CREATE DATABASE {SCRATCH_DB}")
    scratch = urllib.parse.urlunsplit(parts._replace(path=f"/{SCRATCH_DB}"))
    try:
        yield scratch
    finally:
        admin.execute(f"DROP DATABASE IF EXISTS {SCRATCH_DB} WITH (FORCE)")
        admin.close()


@contextmanager
def sqlite_scratch() -> Iterator[str]:
    directory = tempfile.mkdtemp(prefix="bench_ingest_")
    try:
        yield f"sqlite:///{directory}/bench.sqlite3"
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@dataclass
class Server:
    url: str
    pid: int


@contextmanager
def served(database_url: str, workers: int) -> Iterator[Server]:
    """`uvicorn config.asgi:application --workers N` on a free port, until the block ends."""
    port = free_port()
    process = subprocess.Popen(
        [PYTHON, "-m", "uvicorn", "config.asgi:application", "--host", "127.0.0.1", "--port", str(port),
         "--workers", str(workers), "--log-level", "warning", "--no-access-log"],
        env=server_env(database_url), cwd=ROOT, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(url + "/healthz", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the server did not start")
            time.sleep(0.2)
        yield Server(url, process.pid)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


# --- load -------------------------------------------------------------------------------------

def register(database_url: str, chain_ids: list[str]) -> dict[str, tuple[str, SimulatedChain]]:
    out = {}
    for chain_id in chain_ids:
        keys = generate_node_keys(chain_id)
        nodes = [f"--node={n}={k.public_key().to_hex()}" for n, k in keys.items()]
        printed = manage(database_url, "register_chain", "--id", chain_id, "--name", CHAIN_NAMES[chain_id],
                         *nodes, "--quorum", "3")
        out[chain_id] = (printed.strip().splitlines()[-1], SimulatedChain(chain_id, keys,
                                                                          rng=random.Random(chain_id)))
    return out


def prepare(database_url: str, chain_ids: list[str], blocks: int, block_size: int,
            seed: int) -> list[ChainLoad]:
    """Register the chains and pre-generate their setup blocks and `blocks` signed trade blocks."""
    world = build_world(seed)
    loads = []
    for chain_id, (key, chain) in register(database_url, chain_ids).items():
        load = ChainLoad(chain_id, key, chain)
        stream = ChainStream(world, chain_id, seed=seed)
        now = datetime.now(UTC)
        for specs in stream.setup_blocks(now):
            block = chain.build_block(specs, now)
            chain.accept(block)
            load.setup.append(encode_block(block))
        for _ in range(blocks):
            block = chain.build_block(stream.trades(chain.next_height, now, block_size), now)
            chain.accept(block)
            load.blocks.append(block)
            load.bodies.append(encode_block(block))
        loads.append(load)
    return loads


@contextmanager
def sampled(server: Server, output: str | None) -> Iterator[None]:
    """py-spy (raw collapsed stacks of every server process) while the block runs, if asked."""
    if not output:
        yield
        return
    binary = shutil.which("py-spy") or os.environ.get("PY_SPY", "")
    if not binary:
        raise SystemExit("--py-spy needs py-spy on PATH (pip install py-spy) or PY_SPY=/path/to/py-spy")
    spy = subprocess.Popen([binary, "record", "--pid", str(server.pid), "--subprocesses", "--nonblocking",
                            "--rate", "200", "--format", "raw", "--output", output],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)  # py-spy attaches
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)
        spy.wait(60)


def post_all(server: Server, loads: list[ChainLoad],
             profile: str | None = None) -> tuple[float, float, dict[str, float]]:
    """POST every chain's setup blocks (untimed), then the trade blocks, one thread per chain.
    Returns (start, end) of the timed part and the CPU seconds used in it by kind."""
    url = server.url
    for load in loads:
        with ChainClient(url, load.chain_id, load.api_key) as client:
            for body in load.setup:
                answer = client.post_body(body)
                if answer.status != 201:
                    raise SystemExit(f"{load.chain_id}: setup refused: {answer.status} {answer.data}")
    barrier = threading.Barrier(len(loads) + 1)

    def run(load: ChainLoad) -> None:
        with ChainClient(url, load.chain_id, load.api_key, timeout=120) as client:
            client.chain()  # open the keep-alive connection before the clock starts
            barrier.wait()
            for body in load.bodies:
                answer = client.post_body(body)
                load.latencies.append(answer.seconds)
                if answer.status != 201:
                    load.errors.append(f"{answer.status} {answer.code}: {answer.data.get('detail')}")
            load.finished_at = time.perf_counter()

    threads = [threading.Thread(target=run, args=(load,)) for load in loads]
    with sampled(server, profile):
        for thread in threads:
            thread.start()
        cpu_before = cpu_seconds(server)
        barrier.wait()
        start = time.perf_counter()
        for thread in threads:
            thread.join()
        cpu_after = cpu_seconds(server)
    cpu = cpu_used(cpu_before, cpu_after)
    return start, max(load.finished_at for load in loads), cpu


def cpu_seconds(server: Server) -> dict[int, tuple[str, float]]:
    """CPU seconds used so far by each live process, with its kind: the server's processes,
    PostgreSQL's, or anything else (this client included). Read from /proc: Linux only."""
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    out: dict[int, tuple[str, float]] = {}
    try:
        pids = [int(p) for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return out
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{pid}/comm") as f:
                comm = f.read().strip()
        except OSError:
            continue
        # fields[2] is the process group; the server runs in a session of its own (start_new_session)
        kind = ("server" if int(fields[2]) == server.pid else
                "postgres" if comm.startswith("postgres") else "other")
        out[pid] = (kind, (int(fields[11]) + int(fields[12])) / tick)
    return out


def cpu_used(before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]]) -> dict[str, float]:
    """CPU seconds by kind between two `cpu_seconds` readings (processes that ended in between are
    not counted: PostgreSQL backends and server workers live through the run)."""
    totals: dict[str, float] = {}
    for pid, (kind, seconds) in after.items():
        totals[kind] = totals.get(kind, 0.0) + seconds - before.get(pid, (kind, 0.0))[1]
    return totals


def measure(label: str, server: Server, loads: list[ChainLoad], profile: str | None = None) -> Result:
    load_before = os.getloadavg()[0]
    start, end, cpu = post_all(server, loads, profile)
    transactions = sum(len(b["transactions"]) for load in loads for b in load.blocks)
    latencies = [lat for load in loads for lat in load.latencies]
    result = Result(label, transactions, end - start, latencies,
                    [e for load in loads for e in load.errors], load=(load_before, os.getloadavg()[0]),
                    cpu=cpu)
    # Steady state: leave out each chain's first 10 % of blocks (connection and cache warm-up).
    skip = [max(1, len(load.latencies) // 10) for load in loads]
    steady_tx = sum(len(b["transactions"])
                    for load, k in zip(loads, skip, strict=True) for b in load.blocks[k:])
    steady_s = max(sum(load.latencies[k:]) for load, k in zip(loads, skip, strict=True))
    result.steady_tx_per_s = steady_tx / steady_s if steady_s else None
    first = [lat for load, k in zip(loads, skip, strict=True) for lat in load.latencies[:k]]
    last = [lat for load, k in zip(loads, skip, strict=True) for lat in load.latencies[-k:]]
    result.first_last_ms = (statistics.fmean(first) * 1000, statistics.fmean(last) * 1000)
    return result


# --- raw COPY of the same rows --------------------------------------------------------------------

def copy_rate(database_url: str, loads: list[ChainLoad]) -> float:
    """tx/s of COPYing the same transaction and trade rows (one COPY per table per block, one commit
    per block) into scratch tables shaped like ours (same columns and indexes, no foreign keys)."""
    import psycopg

    rows = []
    block_id = 0
    for load in loads:
        for block in load.blocks:
            block_id += 1
            height = block["header"]["height"]
            tx_rows, trade_rows = [], []
            for index, tx in enumerate(block["transactions"]):
                body = tx["body"]
                tx_rows.append((load.chain_id, block_id, height, index, tx["tx_id"], tx["type"], tx["nonce"],
                                canonical_json(body).decode()))
                trade_rows.append((load.chain_id, height, tx["tx_id"], body["security"], body["buyer"],
                                   body["seller"], int(body["quantity"]), Decimal(body["price"]),
                                   parse_time(body["executed_at"])))
            rows.append((tx_rows, trade_rows))
    tx_columns = 'chain_id, block_id, height, "index", tx_id, type, nonce, body'
    trade_columns = "chain_id, height, tx_id, security, buyer, seller, quantity, price, executed_at"
    with psycopg.connect(database_url) as conn:
        conn.execute("CREATE TABLE bench_copy_tx (LIKE businesschain_transaction INCLUDING ALL)")
        conn.execute("CREATE TABLE bench_copy_trade (LIKE businesschain_trade INCLUDING ALL)")
        conn.commit()
        start = time.perf_counter()
        for tx_rows, trade_rows in rows:
            with conn.cursor() as cursor:
                with cursor.copy(f"COPY bench_copy_tx ({tx_columns}) FROM STDIN") as copy:
                    for row in tx_rows:
                        copy.write_row(row)
                with cursor.copy(f"COPY bench_copy_trade ({trade_columns}) FROM STDIN") as copy:
                    for row in trade_rows:
                        copy.write_row(row)
            conn.commit()
        seconds = time.perf_counter() - start
        conn.execute("DROP TABLE bench_copy_tx, bench_copy_trade")
    return sum(len(t) for t, _ in rows) / seconds


# --- runs ------------------------------------------------------------------------------------------

def run(label: str, database_url: str, *, blocks: int, block_size: int, workers: int, chains: list[str],
        seed: int, with_copy: bool, profile: str | None = None) -> Result:
    print(f"[{label}] migrating scratch database …", flush=True)
    manage(database_url, "migrate", "--noinput", "-v0")
    started = time.perf_counter()
    loads = prepare(database_url, chains, blocks, block_size, seed)
    count = sum(len(load.blocks) for load in loads)
    print(f"[{label}] generated and signed {count} blocks of {block_size} trades in "
          f"{time.perf_counter() - started:.1f} s (not timed)", flush=True)
    with served(database_url, workers) as server:
        result = measure(label, server, loads, profile)
    if with_copy:
        result.copy_tx_per_s = copy_rate(database_url, loads)
    return result


def report(result: Result, block_size: int) -> None:
    lat = result.latencies
    print(f"\n== {result.label} ==")
    print(f"  {result.transactions:,} tx in {len(lat)} blocks of {block_size} over {result.seconds:.2f} s: "
          f"{result.tx_per_s:,.0f} tx/s sustained"
          + (f" (steady state {result.steady_tx_per_s:,.0f} tx/s)" if result.steady_tx_per_s else ""))
    print(f"  acceptance latency per block: p50 {quantile(lat, 0.5) * 1000:.0f} ms, "
          f"p99 {quantile(lat, 0.99) * 1000:.0f} ms, max {max(lat) * 1000:.0f} ms, "
          f"mean {statistics.fmean(lat) * 1000:.0f} ms")
    print(f"  mean latency of the first / last 10 % of each chain's blocks: {result.first_last_ms[0]:.0f} / "
          f"{result.first_last_ms[1]:.0f} ms")
    print(f"  machine load average (1 min) before/after: {result.load[0]:.1f} / {result.load[1]:.1f} "
          f"on {os.cpu_count()} CPUs (other work on the machine skews every figure)")
    if result.cpu:
        blocks = len(lat) or 1
        parts = ", ".join(f"{kind} {seconds / blocks * 1000:.0f}"
                          for kind, seconds in sorted(result.cpu.items()))
        wall = result.seconds / blocks * 1000
        print(f"  CPU per block, ms: {parts} (of {os.cpu_count() or 1} × {wall:.0f} available)")
    if result.copy_tx_per_s:
        fraction = result.tx_per_s / result.copy_tx_per_s
        print(f"  raw COPY of the same rows (transaction + trade): {result.copy_tx_per_s:,.0f} tx/s "
              f"({2 * result.copy_tx_per_s:,.0f} rows/s); ours = {fraction:.0%} of it")
    if result.errors:
        print(f"  {len(result.errors)} refused blocks, first: {result.errors[0]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL") or DEFAULT_PG,
                        help="PostgreSQL server to create the scratch database on")
    parser.add_argument("--blocks", type=int, default=100, help="blocks per chain (PostgreSQL)")
    parser.add_argument("--sqlite-blocks", type=int, default=20, help="blocks per chain (SQLite)")
    parser.add_argument("--block-size", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=3,
                        help="uvicorn worker processes (3 overlap PostgreSQL waits on 2 cores)")
    parser.add_argument("--chains", type=int, default=3, choices=(1, 2, 3))
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--no-sqlite", action="store_true")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--py-spy", metavar="FILE",
                        help="sample the server with py-spy during the timed PostgreSQL run (raw stacks)")
    args = parser.parse_args()
    chains = list(CHAIN_NAMES)[: args.chains]
    print(f"ingest_bench: {len(chains)} chains × blocks of {args.block_size} trades, uvicorn --workers "
          f"{args.workers}, {os.cpu_count()} CPUs")
    results = []
    if not args.no_postgres:
        if not args.database_url.startswith("postgres"):
            raise SystemExit("--database-url must be a PostgreSQL URL (SQLite runs on its own)")
        with postgres_scratch(args.database_url) as scratch:
            results.append(run("PostgreSQL", scratch, blocks=args.blocks, block_size=args.block_size,
                               workers=args.workers, chains=chains, seed=args.seed, with_copy=True,
                               profile=args.py_spy))
    if not args.no_sqlite:
        with sqlite_scratch() as scratch:
            results.append(run("SQLite", scratch, blocks=args.sqlite_blocks, block_size=args.block_size,
                               workers=args.workers, chains=chains, seed=args.seed, with_copy=False))
    for result in results:
        report(result, args.block_size)
    if args.json:
        Path(args.json).write_text(json.dumps([{
            "database": r.label, "tx": r.transactions, "seconds": r.seconds, "tx_per_s": r.tx_per_s,
            "steady_tx_per_s": r.steady_tx_per_s, "p50_ms": quantile(r.latencies, 0.5) * 1000,
            "p99_ms": quantile(r.latencies, 0.99) * 1000, "copy_tx_per_s": r.copy_tx_per_s,
            "errors": len(r.errors), "load": r.load, "first_last_ms": r.first_last_ms, "cpu_seconds": r.cpu}
            for r in results], indent=1))


if __name__ == "__main__":
    main()
