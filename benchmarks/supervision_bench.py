"""The supervision chain's speed targets (issue 4), measured on a scratch database.

    DJANGO_DEBUG=1 .venv/bin/python benchmarks/supervision_bench.py [--database-url URL]
        [--audit-blocks 200] [--block-size 1000] [--latency-samples 20] [--anchors 1000000]

With a PostgreSQL DATABASE_URL (or --database-url) a scratch database `bench_supervision` is
created on that server and dropped at the end; otherwise a temporary SQLite file is used.

1. receipt latency: `manage.py run_sealer` runs as its own process with the default settings;
   blocks are POSTed at random moments and the receipt is polled every 10 ms until it answers 200.
   Target ≤ 3 s.
2. audit_chains: the whole audit (transactions, blocks, signatures, anchors, supervision chain)
   over `--audit-blocks` blocks of `--block-size` transactions ingested through `block_submit`.
   Target ≥ 50,000 tx/s.
3. sealing 10,000 anchors: `supervision_block_seal` over 10,000 pending anchors, repeated while
   `--anchors` anchors (inserted with COPY / one bulk INSERT) are sealed, so the last seals run with
   the full table. Target ≤ 1 s.
4. receipt answer time with `--anchors` anchors stored: `GET /api/v1/receipts/{hash}` through the
   whole Django stack (regulator session), cold (first request for the hash) and warm (repeated).
   Target ≤ 20 ms.

Each result is printed as `name: value unit (target …)`.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SCRATCH_DB = "bench_supervision"


def scratch_database(url: str | None, workdir: Path) -> tuple[str, Any]:
    """(DATABASE_URL of the scratch database, cleanup function)."""
    if url and url.startswith(("postgres://", "postgresql://")):
        import psycopg

        parts = urllib.parse.urlsplit(url)
        admin = urllib.parse.urlunsplit(parts._replace(path="/postgres"))
        scratch = urllib.parse.urlunsplit(parts._replace(path=f"/{SCRATCH_DB}"))
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{SCRATCH_DB}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{SCRATCH_DB}"')

        def drop() -> None:
            from django.db import connections

            connections.close_all()
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{SCRATCH_DB}" WITH (FORCE)')

        return scratch, drop
    return f"sqlite:///{workdir / 'bench.sqlite3'}", lambda: None


def report(name: str, value: float, unit: str, target: str, extra: str = "") -> None:
    print(f"{name}: {value:,.2f} {unit} (target {target}){'  ' + extra if extra else ''}", flush=True)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


# --- data ---------------------------------------------------------------------------------------

class BenchChain:
    """A registered chain whose blocks are built and signed here and sent through ingestion."""

    def __init__(self, chain_id: str) -> None:
        from businesschain.registry import chain_register, token_lookup
        from gm import sm2

        self.chain_id = chain_id
        self.nodes = {f"{chain_id}-node-{i}": sm2.generate_private_key() for i in range(1, 4)}
        issued = chain_register(chain_id=chain_id, name=f"bench {chain_id}", quorum=2,
                                nodes={n: k.public_key().to_hex() for n, k in self.nodes.items()})
        self.key = issued.key
        self.token = token_lookup(issued.key)
        self.height, self.head = -1, "0" * 64
        self.clock = datetime.now(UTC) - timedelta(days=1)
        self.nonce = 0

    def _sign(self, message: bytes) -> list[dict[str, str]]:
        return [{"node": n, "sig": k.sign(message).hex()} for n, k in self.nodes.items()]

    def next_block(self, size: int) -> dict[str, Any]:
        from businesschain.protocol.builder import format_time, make_block, make_transaction

        txs = []
        for _ in range(size):
            self.nonce += 1
            n = self.nonce
            if n % 2:
                txs.append(make_transaction("evidence", f"{self.chain_id}-{n:010d}", {
                    "business_type": "contract", "reference": f"合同-{n}", "doc_sm3": f"{n:064x}",
                    "fields": {"party": "某某证券股份有限公司", "amount": f"{n}.50"}}))
            else:
                txs.append(make_transaction("trade", f"{self.chain_id}-{n:010d}", {
                    "security": "600000", "buyer": f"A{n % 9973:07d}", "seller": f"B{n % 7919:07d}",
                    "quantity": str(100 * (n % 50 + 1)), "price": "10.25",
                    "executed_at": format_time(self.clock)}))
        self.clock += timedelta(seconds=1)
        block = make_block(self.chain_id, self.height + 1, self.head, self.clock, txs, self._sign)
        self.height, self.head = block["header"]["height"], block["block_hash"]
        return block

    def submit(self, block: dict[str, Any]) -> None:
        from businesschain.ingest import block_submit

        body = json.dumps(block, ensure_ascii=False).encode()
        outcome = block_submit(chain_id=self.chain_id, body=body, token=self.token)
        assert outcome.accepted, outcome.as_json()


# --- measurements -------------------------------------------------------------------------------

def bench_receipt_latency(chain: BenchChain, env: dict[str, str], samples: int) -> None:
    from django.test import Client

    sealer = subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), "run_sealer", "--audit-interval", "0"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT,
    )
    client = Client()
    headers = {"HTTP_AUTHORIZATION": f"Token {chain.key}"}
    latencies = []
    try:
        time.sleep(3.0)  # let the sealer start (imports, key) before the clock runs
        rng = random.Random(4)
        for _ in range(samples):
            time.sleep(rng.uniform(0.05, 2.5))
            block = chain.next_block(10)
            response = client.post(f"/api/v1/chains/{chain.chain_id}/blocks", data=json.dumps(block),
                                   content_type="application/json", **headers)
            assert response.status_code == 201, response.content
            accepted = time.perf_counter()
            url = response.json()["accepted"][0]["receipt"]
            while True:
                status = client.get(url, **headers).status_code
                if status == 200:
                    break
                assert status == 202, status
                if time.perf_counter() - accepted > 30:
                    raise RuntimeError("no receipt within 30 s: is the sealer running?")
                time.sleep(0.01)
            latencies.append(time.perf_counter() - accepted)
    finally:
        sealer.send_signal(signal.SIGTERM)
        sealer.wait(15)
    report("receipt latency after acceptance (max)", max(latencies), "s", "≤ 3 s",
           f"p50 {statistics.median(latencies):.2f} s, {samples} blocks, SEAL_INTERVAL_SECONDS=2")


def bench_audit(chains: list[BenchChain], blocks: int, size: int) -> None:
    from supervision.anchoring import anchors_sweep, supervision_block_seal
    from supervision.audit import audit_chains

    started = time.perf_counter()
    per_chain = blocks // len(chains)
    for _ in range(per_chain):
        for chain in chains:
            chain.submit(chain.next_block(size))
    ingest_s = time.perf_counter() - started
    anchors_sweep(full=True)
    while supervision_block_seal() is not None:
        pass
    runs = []
    for _ in range(2):
        result = audit_chains(record=False)
        assert result.ok, [str(m) for m in result.mismatches[:5]]
        runs.append(result)
    best = max(runs, key=lambda r: r.transactions / r.seconds)
    report("audit_chains", best.transactions / best.seconds, "tx/s", "≥ 50,000 tx/s",
           f"{best.transactions:,} tx in {best.blocks:,} blocks ({size} tx, 3 signatures each), "
           f"{best.anchors:,} anchors, {best.supervision_blocks:,} supervision blocks: {best.seconds:.2f} s "
           f"[ingested in {ingest_s:.1f} s]")


def insert_pending_anchors(count: int, chain_id: str = "bench-sim") -> None:
    """`count` pending anchors with correct leaf hashes, in one COPY (PostgreSQL) or bulk INSERT."""
    from django.db import connection
    from django.utils import timezone

    from supervision.anchoring import anchor_leaf_hex
    from supervision.models import Anchor

    now = timezone.now()
    table = connection.ops.quote_name(Anchor._meta.db_table)
    columns = "chain_id, height, block_hash, leaf_hash, created_at"
    rng = random.Random(f"{chain_id}-{count}")
    batch = 100_000
    for start in range(0, count, batch):
        rows = []
        for height in range(start, min(count, start + batch)):
            block_hash = rng.randbytes(32).hex()
            rows.append((chain_id, height, block_hash, anchor_leaf_hex(chain_id, height, block_hash), now))
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                with cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
            else:
                cursor.executemany(f"INSERT INTO {table} ({columns}) VALUES (%s, %s, %s, %s, %s)", rows)


def bench_seal_and_receipts(anchor_count: int, regulator: Any) -> None:
    from django.db import connection
    from django.test import Client

    from supervision.anchoring import supervision_block_seal
    from supervision.models import Anchor

    started = time.perf_counter()
    insert_pending_anchors(anchor_count)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {connection.ops.quote_name(Anchor._meta.db_table)}")
    insert_s = time.perf_counter() - started
    seals = []
    while True:
        result = supervision_block_seal(max_anchors=10_000)
        if result is None:
            break
        if result.anchor_count == 10_000:
            seals.append(result.seconds)
    report("seal 10,000 anchors (max)", max(seals), "s", "≤ 1 s",
           f"median {statistics.median(seals):.3f} s over {len(seals)} seals while {anchor_count:,} anchors "
           f"were inserted ({insert_s:.1f} s) and sealed")

    client = Client()
    client.force_login(regulator)
    last_id = Anchor.objects.order_by("-id").values_list("id", flat=True).first()
    first_id = last_id - anchor_count + 1
    rng = random.Random(5)
    full = [Anchor.objects.values_list("block_hash", flat=True).get(id=rng.randint(first_id, last_id))
            for _ in range(200)]
    # A typical block: what 2 s of traffic brings (here 50 anchors), sealed on top of the million.
    insert_pending_anchors(1_000, chain_id="bench-typical")
    while supervision_block_seal(max_anchors=50) is not None:
        pass
    typical = list(Anchor.objects.filter(chain_id="bench-typical").values_list("block_hash", flat=True)[::5])
    total = Anchor.objects.count()
    client.get(f"/api/v1/receipts/{full[0]}")  # warm the code paths
    for label, picks, leaves in (("10,000-leaf block", full, 10_000), ("50-leaf block", typical, 50)):
        cold, warm = [], []
        for block_hash in picks:
            t0 = time.perf_counter()
            response = client.get(f"/api/v1/receipts/{block_hash}")
            cold.append(time.perf_counter() - t0)
            assert response.status_code == 200 and response.json()["tree_size"] == leaves, response.content
            t0 = time.perf_counter()
            client.get(f"/api/v1/receipts/{block_hash}")
            warm.append(time.perf_counter() - t0)
        report(f"receipt answer, {label}, cold (p99)", percentile(cold, 0.99) * 1000, "ms", "≤ 20 ms",
               f"p50 {statistics.median(cold) * 1000:.1f} ms, max {max(cold) * 1000:.1f} ms; warm p50 "
               f"{statistics.median(warm) * 1000:.1f} ms, p99 {percentile(warm, 0.99) * 1000:.1f} ms; "
               f"{len(cold)} receipts, {total:,} anchors stored, GET through Django with a regulator session")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL", ""))
    parser.add_argument("--audit-blocks", type=int, default=200)
    parser.add_argument("--block-size", type=int, default=1000)
    parser.add_argument("--latency-samples", type=int, default=20)
    parser.add_argument("--anchors", type=int, default=1_000_000)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="supervision-bench-"))
    url, cleanup = scratch_database(args.database_url, workdir)
    os.environ["DATABASE_URL"] = url
    os.environ["SUPERVISOR_KEY_FILE"] = str(workdir / "supervisor_key.pem")
    from gm import sm2

    (workdir / "supervisor_key.pem").write_bytes(sm2.generate_private_key().to_pem())
    os.environ.setdefault("DJANGO_DEBUG", "1")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ["TASKS_BACKEND"] = "django_tasks.backends.dummy.DummyBackend"  # no worker: drop enqueued work
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth.models import Group, User
    from django.core.management import call_command
    from django.test.utils import setup_test_environment

    from businesschain.api.permissions import REGULATOR_GROUP
    from gm import backend_name

    setup_test_environment()  # lets django.test.Client talk to the app ('testserver' host)
    settings.DEBUG = False  # no SQL logging
    try:
        call_command("migrate", verbosity=0, stdout=io.StringIO())
        database = settings.DATABASES["default"]
        print(f"# supervision_bench on {database['ENGINE'].rsplit('.', 1)[-1]} "
              f"({database.get('NAME')}), SM2 {backend_name()}, {os.cpu_count()} CPUs", flush=True)
        regulator = User.objects.create_user("bench-regulator")
        regulator.groups.add(Group.objects.get_or_create(name=REGULATOR_GROUP)[0])
        chains = [BenchChain("bench-a"), BenchChain("bench-b")]
        bench_audit(chains, args.audit_blocks, args.block_size)
        env = {**os.environ, "DJANGO_DEBUG": "1"}
        bench_receipt_latency(chains[0], env, args.latency_samples)
        bench_seal_and_receipts(args.anchors, regulator)
    finally:
        cleanup()


if __name__ == "__main__":
    main()
