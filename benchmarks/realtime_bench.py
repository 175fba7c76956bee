"""Live push latency end to end (issue 5): from a block's acceptance to its alert arriving at every
connected websocket client, over Redis, with the served processes as production runs them.

    DJANGO_DEBUG=1 .venv/bin/python benchmarks/realtime_bench.py [--clients 100] [--blocks 30]
        [--worker-interval 0.2] [--web-workers 1] [--logins 5] [--per-block] [--profile-task]
        [--no-deflate] [--gc-freeze] [--keep-logs]

Setup (untimed): a scratch PostgreSQL database `bench_realtime` (created, migrated, dropped at the
end), a chain registered in-process (4 SM2 nodes, quorum 3), a regulator; then uvicorn
(`config.asgi:application`, debug off, Redis pub/sub channel layer on `--redis-url`) and the task
worker (`db_worker --interval …`, as run_stack starts it) as subprocesses. One setup block registers
one holder with two accounts per measured block; `--logins` sessions are obtained by POSTing
/accounts/login/ (with CSRF, `X-Forwarded-Proto: https`) and the `--clients` websocket clients share
them round-robin (each login costs a PBKDF2 hash on the server, ~0.3 s; sharing a session changes
nothing for the push). Three warm-up blocks must reach every client before measuring.

Measured:
1. queued rule: each block carries one wash trade (buyer and seller accounts of one holder, a new
   holder per block, so each is a new alert). t0 = the 201 response's arrival; for every client, the
   arrival of the `alert.created` whose `tx_ids` holds the trade. The path: ingestion → on commit
   `block_analyse_task` enqueued (django-tasks database backend) → worker poll → analysis →
   `alert_raise` → on commit `group_send` (Redis PUBLISH) → uvicorn → websocket frame.
2. ingestion-path rule: a block with a wrong `prev_hash` (`bad_prev_hash` rejection alert, raised
   and published inside the rejected request, before its 422, so "from acceptance" is negative;
   "from send" is the comparable figure); matched by the block hash in the alert's text.

Where the time goes (lines `<rule>_part_*`, p50 / p99 / max): request; enqueue → task start (queue
wait) from django-tasks' rows; task start → alert row (`Alert.created_at`); alert row → Redis (a
probe subscribed to `alerts.all`'s pub/sub channel); Redis → client; fan-out spread. And what
slows a part down: `*_gc_*` (full garbage collections of uvicorn and the worker, from a probe
wrapped around them, overlapping a block's push or task), `*_host_*` (CPU used and run-queue wait
from /proc/<pid>/task/*/schedstat during each block: the share of other work on the host), the
benchmark's own event-loop stalls, and `worker_idle_cpu` (the price of the polling interval).
Experiments: `--worker-interval`, `--no-deflate` (clients refuse permessage-deflate),
`--gc-freeze` (uvicorn calls gc.freeze() after the warm-up), `--profile-task` (one block's analysis
re-run in-process with its queries and a profile).

Target: p99 ≤ 500 ms from acceptance to arrival with 100 clients connected; nothing lost.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import secrets
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import _stack  # noqa: E402

SCRATCH_DB = "bench_realtime"
DEFAULT_REDIS = "redis://127.0.0.1:6379/5"
CHANNEL_PREFIX = "asgi"  # channels_redis default
TARGET_P99_MS = 500.0
USERNAME = "bench-regulator"


def report(name: str, value: float, unit: str, target: str = "", extra: str = "") -> None:
    text = f"{value:,.0f}" if unit in {"deliveries", "blocks", "clients"} else f"{value:,.1f}"
    tail = f" (target {target})" if target else ""
    print(f"{name}: {text} {unit}{tail}{'  ' + extra if extra else ''}", flush=True)


def quantile(values: Sequence[float], q: float) -> float:
    """Nearest-rank quantile (p99 of 3,000 deliveries is the 2,970th smallest)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def summary(name: str, values_s: Sequence[float], *, target: str = "", p99_target: str = "") -> None:
    ms = [v * 1000 for v in values_s]
    report(f"{name}_p50", quantile(ms, 0.50), "ms")
    report(f"{name}_p95", quantile(ms, 0.95), "ms")
    report(f"{name}_p99", quantile(ms, 0.99), "ms", p99_target)
    report(f"{name}_max", max(ms) if ms else math.nan, "ms", target)


# --- in-process Django against the scratch database -------------------------------------------


def django_setup(database_url: str) -> None:
    os.environ["DATABASE_URL"] = database_url
    os.environ.pop("REDIS_URL", None)  # in-process writes publish nothing to the served clients
    os.environ.setdefault("DJANGO_DEBUG", "1")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import logging

    import django

    django.setup()
    logging.getLogger("httpx").setLevel(logging.WARNING)


@dataclass
class World:
    chain: Any  # tests.chainkit.TestChain
    password: str
    pairs: list[tuple[str, str, str]]  # (holder, account a, account b), one per wash-trade block
    security: str
    setup_blocks: list[dict[str, Any]]


def world_create(wash_blocks: int) -> World:
    from django.contrib.auth.models import Group, User

    from businesschain.api.permissions import REGULATOR_GROUP
    from tests.chainkit import Ids, TestChain

    chain = TestChain.register("bench", name="基准链")
    password = secrets.token_urlsafe(16)
    user = User.objects.create_user(USERNAME, password=password)
    user.groups.add(Group.objects.get_or_create(name=REGULATOR_GROUP)[0])

    ids = Ids(seed=2026)
    broker, issuer = ids.org(), ids.org()
    security = "600900"
    txs = [
        chain.tx("entity_register", {"id": broker, "kind": "org", "name": "基准证券", "id_type": "USCC"}),
        chain.tx("entity_register", {"id": issuer, "kind": "org", "name": "基准发行人", "id_type": "USCC"}),
        chain.tx("security_listing", {"security": security, "issuer": issuer, "name": "基准股份",
                                      "total_shares": "1000000000"}),
    ]
    pairs = []
    for i in range(wash_blocks):
        holder = ids.org()
        a, b = f"BA{i:06d}", f"BB{i:06d}"
        pairs.append((holder, a, b))
        txs.append(chain.tx("entity_register", {"id": holder, "kind": "org", "name": f"基准持有人{i}",
                                                "id_type": "USCC"}))
        txs.append(chain.tx("account_open", {"account": a, "holder": holder, "broker": broker}))
        txs.append(chain.tx("account_open", {"account": b, "holder": holder, "broker": broker}))
    block = chain.block(txs)
    chain.accept(block)
    return World(chain=chain, password=password, pairs=pairs, security=security, setup_blocks=[block])


def wash_block(world: World, index: int) -> tuple[dict[str, Any], str]:
    """The next block on the local head, holding one wash trade; (block, the trade's tx id)."""
    from businesschain.protocol.builder import format_time

    _, a, b = world.pairs[index]
    chain = world.chain
    tx = chain.tx("trade", {"security": world.security, "buyer": a, "seller": b, "quantity": "100",
                            "price": "10.00", "executed_at": format_time(chain.clock)})
    block = chain.block([tx])
    chain.accept(block)
    return block, tx["tx_id"]


def unlinked_block(world: World) -> tuple[dict[str, Any], str]:
    """A block for the next height whose prev_hash is not the head: `bad_prev_hash`."""
    chain = world.chain
    block = chain.block([], prev_hash=secrets.token_hex(32))
    return block, block["block_hash"]


# --- the clients ----------------------------------------------------------------------------------


@dataclass
class Expectation:
    key: str  # a tx id or block hash that the alert.created frame must contain
    clients: int
    t_send: float = 0.0
    t0: float = 0.0
    arrivals: dict[int, float] = field(default_factory=dict)
    frames: dict[int, str] = field(default_factory=dict)
    redis_at: float | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)


class Hub:
    """Matches frames to what is expected; every client's reader calls `seen`."""

    def __init__(self, clients: int) -> None:
        self.clients = clients
        self.pending: dict[str, Expectation] = {}
        self.other_frames: dict[str, int] = {}
        self.closed: list[tuple[int, int | None]] = []

    def expect(self, key: str) -> Expectation:
        exp = Expectation(key=key, clients=self.clients)
        self.pending[key] = exp
        return exp

    def seen(self, client: int, at: float, text: str) -> None:
        if not text.startswith('{"type":"alert.created"'):
            kind = text[9:text.find('"', 9)] if text.startswith('{"type":"') else "?"
            if kind == "chain.status":
                chain = text[text.find('"chain":"', 20) + 9:][:32].split('"', 1)[0]
                kind = f"chain.status of {chain}"
            self.other_frames[kind] = self.other_frames.get(kind, 0) + 1
            return
        for key, exp in list(self.pending.items()):
            if key in text and client not in exp.arrivals:
                exp.arrivals[client] = at
                if not exp.frames:
                    exp.frames[client] = text
                if len(exp.arrivals) == exp.clients:
                    exp.done.set()
                    del self.pending[key]
                return
        try:
            alert = json.loads(text)["alert"]
            unmatched = f"alert.created not ours: {alert.get('code')} on {alert.get('chain')}"
        except (ValueError, KeyError, TypeError):
            unmatched = "alert.created not ours"
        self.other_frames[unmatched] = self.other_frames.get(unmatched, 0) + 1

    def redis_seen(self, at: float, data: bytes) -> None:
        for key, exp in self.pending.items():
            if exp.redis_at is None and key.encode() in data:
                exp.redis_at = at


async def reader(ws: Any, index: int, hub: Hub) -> None:
    from websockets.exceptions import ConnectionClosed

    try:
        async for text in ws:
            hub.seen(index, time.time(), text if isinstance(text, str) else text.decode())
    except ConnectionClosed:
        pass
    hub.closed.append((index, ws.close_code))


class LoopLag:
    """How late this process's event loop wakes up: if the benchmark itself stalls, its clients'
    arrival times are late too (the CPU is shared with the served processes)."""

    def __init__(self, tick: float = 0.005) -> None:
        self.tick = tick
        self.stalls: list[tuple[float, float]] = []  # (woke at, seconds late), when > 20 ms

    async def run(self) -> None:
        while True:
            before = time.time()
            await asyncio.sleep(self.tick)
            late = time.time() - before - self.tick
            if late > 0.02:
                self.stalls.append((time.time(), late))

    def during(self, start: float, end: float) -> float:
        """The longest stall that overlaps [start, end]."""
        return max((late for woke, late in self.stalls if woke - late <= end and woke >= start), default=0.0)


async def redis_probe(redis_url: str, hub: Hub, ready: asyncio.Event) -> None:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(redis_url)
    pubsub = client.pubsub()
    try:
        await pubsub.subscribe(f"{CHANNEL_PREFIX}__group__alerts.all")
        ready.set()
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            if message is not None:
                hub.redis_seen(time.time(), message["data"])
    finally:
        await pubsub.aclose()
        await client.aclose()


def _set_cookies(response: Any) -> dict[str, str]:
    jar: dict[str, str] = {}
    for header in response.headers.get_list("set-cookie"):
        cookie = SimpleCookie()
        cookie.load(header)
        jar.update({name: morsel.value for name, morsel in cookie.items()})
    return jar


async def login(http: Any, base: str, password: str) -> tuple[str, float]:
    """A session cookie through Django's login view (debug off: secure cookies, so they are read
    from Set-Cookie and sent by hand; the proxy header makes the request count as HTTPS)."""
    secure_origin = "https://" + base.split("://", 1)[1]
    proxy = {"X-Forwarded-Proto": "https"}
    http.cookies.clear()
    page = await http.get(f"{base}/accounts/login/", headers=proxy)
    if page.status_code != 200:
        raise RuntimeError(f"GET /accounts/login/ answered {page.status_code}: {page.text[:300]}")
    csrf = _set_cookies(page).get("csrftoken")
    if not csrf:
        raise RuntimeError("the login page set no csrftoken cookie")
    started = time.perf_counter()
    http.cookies.clear()
    answer = await http.post(
        f"{base}/accounts/login/",
        data={"username": USERNAME, "password": password, "csrfmiddlewaretoken": csrf},
        headers={**proxy, "Cookie": f"csrftoken={csrf}", "Origin": secure_origin,
                 "Referer": f"{secure_origin}/accounts/login/"},
    )
    elapsed = time.perf_counter() - started
    http.cookies.clear()
    session = _set_cookies(answer).get("sessionid")
    if answer.status_code != 302 or not session:
        raise RuntimeError(f"login answered {answer.status_code} without a session: {answer.text[:300]}")
    return session, elapsed


# --- the run ----------------------------------------------------------------------------------


@dataclass
class Sample:
    kind: str
    key: str
    height: int
    t_send: float
    t0: float
    status: int
    exp: Expectation
    # process name → (CPU seconds, run-queue wait seconds) from the POST to the last arrival
    sched: dict[str, tuple[float, float]] = field(default_factory=dict)


def sched_snapshot(pids: dict[str, int]) -> dict[str, tuple[float, float]]:
    return {name: _stack.sched_seconds(pid, children=name != "bench") for name, pid in pids.items()}


async def post_and_wait(http: Any, world: World, hub: Hub, block: dict[str, Any], key: str, *,
                        kind: str, want_status: int, timeout: float, pids: dict[str, int]) -> Sample:
    exp = hub.expect(key)
    before = sched_snapshot(pids)
    body = json.dumps(block, ensure_ascii=False, separators=(",", ":")).encode()
    exp.t_send = time.time()
    answer = await http.post(f"/api/v1/chains/{world.chain.chain_id}/blocks", content=body,
                             headers={"Authorization": f"Token {world.chain.key}",
                                      "Content-Type": "application/json"})
    exp.t0 = time.time()
    if answer.status_code != want_status:
        raise RuntimeError(f"{kind} block answered {answer.status_code}, expected {want_status}: "
                           f"{answer.text[:400]}")
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(exp.done.wait(), timeout)
    after = sched_snapshot(pids)
    sched = {name: (after[name][0] - before[name][0], after[name][1] - before[name][1]) for name in pids}
    return Sample(kind, key, block["header"]["height"], exp.t_send, exp.t0, answer.status_code, exp, sched)


async def run_clients(args: argparse.Namespace, base: str, world: World, redis_url: str,
                      pids: dict[str, int]) -> dict[str, Any]:
    import httpx
    import websockets

    hub = Hub(args.clients)
    lag = LoopLag()
    out: dict[str, Any] = {"hub": hub, "lag": lag}
    lag_task = asyncio.create_task(lag.run())
    probe_ready = asyncio.Event()
    probe = asyncio.create_task(redis_probe(redis_url, hub, probe_ready))
    readers: list[asyncio.Task[None]] = []
    sockets: list[Any] = []
    limits = httpx.Limits(max_connections=4, max_keepalive_connections=4)
    async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as http:
        try:
            await asyncio.wait_for(probe_ready.wait(), 10)
            # Setup block (holders and accounts) and its analysis: the worker's first task.
            for block in world.setup_blocks:
                answer = await http.post(
                    f"/api/v1/chains/{world.chain.chain_id}/blocks",
                    content=json.dumps(block, ensure_ascii=False).encode(),
                    headers={"Authorization": f"Token {world.chain.key}",
                             "Content-Type": "application/json"})
                if answer.status_code != 201:
                    raise RuntimeError(f"setup block answered {answer.status_code}: {answer.text[:400]}")

            sessions, login_s = [], []
            for _ in range(args.logins):
                session, elapsed = await login(http, base, world.password)
                sessions.append(session)
                login_s.append(elapsed)
            out["login_s"] = login_s

            host = base.split("://", 1)[1]
            started = time.perf_counter()

            async def connect(i: int) -> None:
                ws = await websockets.connect(
                    f"ws://{host}/ws/alerts/", open_timeout=30, ping_interval=None,
                    compression=None if args.no_deflate else "deflate",
                    max_size=2**22, additional_headers={
                        "Cookie": f"sessionid={sessions[i % len(sessions)]}",
                        "Origin": f"http://{host}"})
                sockets.append(ws)
                readers.append(asyncio.create_task(reader(ws, i, hub)))

            # A few at a time: the server checks the session and the group at each connect.
            for first in range(0, args.clients, 20):
                await asyncio.gather(*(connect(i) for i in range(first, min(first + 20, args.clients))))
            await asyncio.sleep(0.5)
            if hub.closed:
                raise RuntimeError(f"{len(hub.closed)} websocket(s) closed at connect, codes "
                                   f"{sorted({c for _, c in hub.closed})}")
            out["connect_s"] = time.perf_counter() - started

            await wait_tasks_idle(timeout=60)  # the setup block's analysis (cold worker)

            # Warm-up (not measured): the worker's caches, the server's first pushes.
            index = 0
            for _ in range(args.warmup):
                block, key = wash_block(world, index)
                index += 1
                sample = await post_and_wait(http, world, hub, block, key, kind="warmup",
                                             want_status=201, timeout=args.timeout, pids=pids)
                if len(sample.exp.arrivals) != args.clients:
                    raise RuntimeError(
                        f"warm-up wash trade reached {len(sample.exp.arrivals)} of {args.clients} "
                        f"clients within {args.timeout:.0f} s: does the wash_trade rule fire? "
                        f"(see the worker log)")
                await asyncio.sleep(random.uniform(args.gap_min, args.gap_max))

            if args.gc_freeze and args.web_workers == 1:
                os.kill(pids["uvicorn"], signal.SIGUSR1)
                await asyncio.sleep(0.5)

            queued: list[Sample] = []
            for _ in range(args.blocks):
                block, key = wash_block(world, index)
                index += 1
                queued.append(await post_and_wait(http, world, hub, block, key, kind="wash_trade",
                                                  want_status=201, timeout=args.timeout, pids=pids))
                # A random pause: blocks land at random phases of the worker's polling.
                await asyncio.sleep(random.uniform(args.gap_min, args.gap_max))

            direct: list[Sample] = []
            for _ in range(args.blocks):
                block, key = unlinked_block(world)
                direct.append(await post_and_wait(http, world, hub, block, key, kind="bad_prev_hash",
                                                  want_status=422, timeout=args.timeout, pids=pids))
                await asyncio.sleep(random.uniform(args.gap_min, args.gap_max))

            await asyncio.sleep(1.0)  # late deliveries still count as late, not lost
            out["queued"], out["direct"] = queued, direct
            out["idle"] = await idle_cost(pids, seconds=args.idle_seconds)
            out["closed_during_run"] = list(hub.closed)
        finally:
            for ws in sockets:
                await ws.close()
            await asyncio.gather(*readers, return_exceptions=True)
            probe.cancel()
            lag_task.cancel()
            await asyncio.gather(probe, lag_task, return_exceptions=True)
    return out


async def idle_cost(pids: dict[str, int], *, seconds: float) -> dict[str, float]:
    """CPU share (of one core) used by the worker and the scratch database's PostgreSQL backends while
    nothing happens: the price of the worker's polling interval."""
    from asgiref.sync import sync_to_async

    def backends() -> list[int]:
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                           "AND pid <> pg_backend_pid()")
            return [row[0] for row in cursor.fetchall()]

    pg = await sync_to_async(backends)()

    def snapshot() -> tuple[float, float]:
        worker = _stack.sched_seconds(pids["worker"])[0]
        database = sum(_stack.sched_seconds(pid, children=False)[0] for pid in pg)
        return worker, database

    before = snapshot()
    await asyncio.sleep(seconds)
    after = snapshot()
    return {"worker": (after[0] - before[0]) / seconds, "postgres": (after[1] - before[1]) / seconds}


async def wait_tasks_idle(*, timeout: float) -> None:
    from asgiref.sync import sync_to_async

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await sync_to_async(_tasks_pending)() == 0:
            return
        await asyncio.sleep(0.2)
    raise TimeoutError("the task worker did not finish the setup block's analysis")


def _tasks_pending() -> int:
    from django_tasks_db.models import DBTaskResult

    return DBTaskResult.objects.filter(status__in=["READY", "RUNNING"]).count()


def _task_rows() -> dict[int, dict[str, Any]]:
    from django_tasks_db.models import DBTaskResult

    rows: dict[int, dict[str, Any]] = {}
    for row in DBTaskResult.objects.filter(task_path__endswith="block_analyse_task").values(
            "args_kwargs", "status", "enqueued_at", "started_at", "finished_at", "return_value",
            "exception_class_path", "traceback"):
        height = int(row["args_kwargs"]["kwargs"]["height"])
        rows[height] = row
    return rows


def _alert_times(keys: Sequence[str]) -> dict[str, datetime]:
    from supervision.models import Alert

    wanted = set(keys)
    out: dict[str, datetime] = {}
    rows = Alert.objects.values_list("code", "tx_ids", "detail_en", "created_at")
    for code, tx_ids, detail, created in rows:
        for key in (*tx_ids, *(k for k in wanted if code == "bad_prev_hash" and k in detail)):
            if key in wanted:
                out[key] = created
    return out


def analyse(args: argparse.Namespace, out: dict[str, Any]) -> bool:
    queued: list[Sample] = out["queued"]
    direct: list[Sample] = out["direct"]
    hub: Hub = out["hub"]
    tasks = _task_rows()
    alerts = _alert_times([s.key for s in queued + direct])
    ok = True

    print(f"# {args.clients} websocket clients ({args.logins} login sessions, logins "
          f"{statistics_text(out['login_s'])} s each), connected in {out['connect_s']:.1f} s; "
          f"worker interval {args.worker_interval} s; {args.web_workers} uvicorn worker(s)", flush=True)
    cold = tasks.get(0)
    if cold and cold["started_at"] and cold["finished_at"]:
        report("worker_first_task", (cold["finished_at"] - cold["started_at"]).total_seconds() * 1000, "ms",
               extra="(setup block: imports, structure rebuild; not measured below)")

    failed = [(h, r["exception_class_path"]) for h, r in sorted(tasks.items()) if r["status"] == "FAILED"]
    if failed:
        ok = False
        last = (tasks[failed[0][0]]["traceback"] or "").strip().splitlines()[-3:]
        print(f"# {len(failed)} block_analyse_task runs FAILED, e.g. height {failed[0][0]}: {failed[0][1]}: "
              + " | ".join(line.strip() for line in last), flush=True)

    for label, samples in (("queued", queued), ("direct", direct)):
        rule = ("wash_trade via block_analyse_task" if label == "queued"
                else "bad_prev_hash on the ingestion path")
        print(f"\n## {label}: {rule}, {len(samples)} blocks × {args.clients} clients", flush=True)
        from_t0 = [at - s.t0 for s in samples for at in s.exp.arrivals.values()]
        from_send = [at - s.t_send for s in samples for at in s.exp.arrivals.values()]
        expected = len(samples) * args.clients
        lost = expected - len(from_t0)
        late = sum(1 for v in from_t0 if v > args.timeout)
        summary(f"{label}_accept_to_client", from_t0,
                p99_target=f"≤ {TARGET_P99_MS:.0f} ms" if label == "queued" else "")
        summary(f"{label}_send_to_client", from_send)
        report(f"{label}_lost", lost, "deliveries", "0", extra=f"of {expected}; {late} later than "
               f"{args.timeout:.0f} s")
        ok &= lost == 0
        if label == "queued":
            ok &= quantile([v * 1000 for v in from_t0], 0.99) <= TARGET_P99_MS

        # Parts, per block (each block's worst client for the last part).
        request = [s.t0 - s.t_send for s in samples]
        redis_from_t0 = [s.exp.redis_at - s.t0 for s in samples if s.exp.redis_at]
        push = [at - s.exp.redis_at for s in samples if s.exp.redis_at for at in s.exp.arrivals.values()]
        push_spread = [max(s.exp.arrivals.values()) - min(s.exp.arrivals.values())
                       for s in samples if s.exp.arrivals]
        print("# parts (ms, p50 / p99 / max over blocks; redis→client over deliveries)", flush=True)
        part(f"{label}_part_request", request)
        if label == "queued":
            waits, analysis, publish, task_total, t0_to_start = [], [], [], [], []
            for s in samples:
                row = tasks.get(s.height)
                if not row or not row["started_at"]:
                    continue
                enq, start = row["enqueued_at"].timestamp(), row["started_at"].timestamp()
                waits.append(start - enq)
                t0_to_start.append(start - s.t0)
                if row["finished_at"]:
                    task_total.append(row["finished_at"].timestamp() - start)
                created = alerts.get(s.key)
                if created:
                    analysis.append(created.timestamp() - start)
                    if s.exp.redis_at:
                        publish.append(s.exp.redis_at - created.timestamp())
            part(f"{label}_part_enqueue_to_task_start", waits, "queue wait: worker polling + busy")
            part(f"{label}_part_response_to_task_start", t0_to_start)
            part(f"{label}_part_task_start_to_alert_row", analysis, "analysis up to alert_raise")
            part(f"{label}_part_alert_row_to_redis", publish, "rest of the task, commit, PUBLISH")
            part(f"{label}_part_task_total", task_total, "block_analyse_task start → finish")
        part(f"{label}_part_response_to_redis", redis_from_t0)
        part(f"{label}_part_redis_to_client", push, "uvicorn: pub/sub → consumer → frame")
        part(f"{label}_part_first_to_last_client", push_spread, "fan-out spread per alert")
        gc_report(label, samples, tasks if label == "queued" else {}, out["gc"])
        for name in ("uvicorn", "worker", "bench"):
            part(f"{label}_host_{name}_cpu", [smp.sched[name][0] for smp in samples if smp.sched],
                 "CPU time used per block window")
            part(f"{label}_host_{name}_runqueue_wait", [smp.sched[name][1] for smp in samples if smp.sched],
                 "runnable but waiting for a CPU: the host's share")
        if args.per_block:
            for sample in samples:
                print_timeline(sample, tasks.get(sample.height) if label == "queued" else None, out["lag"],
                               out["gc"])
    idle = out["idle"]
    report("worker_idle_cpu", idle["worker"] * 100, "% of a core",
           extra=f"(+ {idle['postgres'] * 100:.1f} % in PostgreSQL; polling every {args.worker_interval} s)")
    if hub.closed and out.get("closed_during_run"):
        print(f"# websockets closed during the run: {out['closed_during_run'][:10]}")
    print(f"# other frames received: {dict(sorted(hub.other_frames.items()))}", flush=True)
    lag: LoopLag = out["lag"]
    big = [late for _, late in lag.stalls if late > 0.05]
    print(f"# benchmark event loop: {len(lag.stalls)} wake-ups > 20 ms late, {len(big)} > 50 ms, longest "
          f"{max((late for _, late in lag.stalls), default=0) * 1000:.0f} ms (client-side share of the tail)",
          flush=True)
    return ok


def overlap(pauses: Sequence[tuple[float, float, int]], start: float, end: float) -> float:
    return sum(max(0.0, min(e, end) - max(s, start)) for s, e, _ in pauses)


def gc_report(label: str, samples: Sequence[Sample], tasks: dict[int, dict[str, Any]],
              gc: dict[str, list[tuple[float, float, int]]]) -> None:
    """Garbage-collector pauses of the served processes inside each block's path."""
    if not samples:
        return
    window = (min(s.t_send for s in samples),
              max(max(s.exp.arrivals.values(), default=s.t0) for s in samples))
    for name, pauses in gc.items():
        inside = [(s, e, g) for s, e, g in pauses if window[0] <= e <= window[1] + 1]
        full = [e - s for s, e, g in inside if g == 2]
        hit = []
        for smp in samples:
            if name == "uvicorn" and smp.exp.redis_at and smp.exp.arrivals:
                hit.append(overlap(inside, smp.exp.redis_at, max(smp.exp.arrivals.values())))
            elif name == "worker" and (row := tasks.get(smp.height)) and row["finished_at"]:
                hit.append(overlap(inside, row["started_at"].timestamp(), row["finished_at"].timestamp()))
        hit = [h for h in hit if h > 0]
        where = "redis→clients" if name == "uvicorn" else "the task"
        print(f"{label}_gc_{name}: {len(full)} full collections ({max(full, default=0) * 1000:.1f} ms "
              f"longest); {len(hit)} of {len(samples)} blocks paused in {where}, "
              f"{max(hit, default=0) * 1000:.1f} ms at most", flush=True)


def print_timeline(s: Sample, task: dict[str, Any] | None, lag: LoopLag,
                   gc: dict[str, list[tuple[float, float, int]]]) -> None:
    """One block: ms from t0 (the response) to each step."""

    def ms(t: float) -> str:
        return f"{(t - s.t0) * 1000:7.1f}"

    arrivals = sorted(s.exp.arrivals.values())
    parts = [f"h={s.height:3d}", f"req {(s.t0 - s.t_send) * 1000:6.1f}"]
    if task and task["started_at"]:
        parts += [f"enq {ms(task['enqueued_at'].timestamp())}", f"start {ms(task['started_at'].timestamp())}"]
        if task["finished_at"]:
            parts.append(f"fin {ms(task['finished_at'].timestamp())}")
    if s.exp.redis_at:
        parts.append(f"redis {ms(s.exp.redis_at)}")
    if arrivals:
        parts += [f"first {ms(arrivals[0])}", f"p50 {ms(arrivals[len(arrivals) // 2])}",
                  f"last {ms(arrivals[-1])}"]
        stall = lag.during(s.t_send, arrivals[-1])
        waits = " ".join(f"{n[0]}{w * 1000:.0f}" for n, (_, w) in s.sched.items())
        parts.append(f"rq-wait {waits}")
        if s.exp.redis_at and (paused := overlap(gc.get("uvicorn", []), s.exp.redis_at, arrivals[-1])):
            parts.append(f"uvicorn-gc {paused * 1000:.0f}")
        if stall:
            parts.append(f"bench-stall {stall * 1000:.0f}")
    print("#   " + "  ".join(parts) + f"  ({len(arrivals)} clients)", flush=True)


def profile_task(height: int, chain_id: str) -> None:
    """Re-run `block_analyse` for one measured block in this process (a repeat: the alert is updated,
    published to this process's in-memory layer) and print its queries and its hot functions."""
    import cProfile
    import pstats

    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from supervision.surveillance import block_analyse

    block_analyse(chain_id=chain_id, height=height)  # warm this process's caches first
    profiler = cProfile.Profile()
    with CaptureQueriesContext(connection) as queries:
        started = time.perf_counter()
        profiler.enable()
        block_analyse(chain_id=chain_id, height=height)
        profiler.disable()
        elapsed = time.perf_counter() - started
    sql_s = sum(float(q["time"]) for q in queries.captured_queries)
    print(f"\n## block_analyse of one wash-trade block, in-process (warm): {elapsed * 1000:.1f} ms, "
          f"{len(queries.captured_queries)} queries taking {sql_s * 1000:.1f} ms", flush=True)
    for q in sorted(queries.captured_queries, key=lambda q: -float(q["time"]))[:8]:
        print(f"#   {float(q['time']) * 1000:6.1f} ms  {q['sql'][:150]}", flush=True)
    stats = pstats.Stats(profiler)
    stats.sort_stats("cumulative")
    rows = [(func, stat[3]) for func, stat in stats.stats.items()  # type: ignore[attr-defined]
            if "supervision" in func[0] or "businesschain" in func[0]]
    for (path, line, name), cum in sorted(rows, key=lambda r: -r[1])[:12]:
        print(f"#   {cum * 1000:6.1f} ms cumulative  {Path(path).name}:{line} {name}", flush=True)


def part(name: str, values_s: Sequence[float], note: str = "") -> None:
    if not values_s:
        print(f"{name}: n/a", flush=True)
        return
    ms = [v * 1000 for v in values_s]
    print(f"{name}: {quantile(ms, 0.5):,.1f} / {quantile(ms, 0.99):,.1f} / {max(ms):,.1f} ms"
          f"{'  (' + note + ')' if note else ''}", flush=True)


def statistics_text(values: Sequence[float]) -> str:
    return f"{min(values):.2f}–{max(values):.2f}" if values else "n/a"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--blocks", type=int, default=30, help="measured blocks per rule")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--logins", type=int, default=5, help="distinct login sessions (PBKDF2 each)")
    parser.add_argument("--worker-interval", type=float, default=0.05,
                        help="db_worker --interval, as run_stack starts it")
    parser.add_argument("--web-workers", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for one alert")
    parser.add_argument("--gap-min", type=float, default=0.1)
    parser.add_argument("--gap-max", type=float, default=0.4)
    parser.add_argument("--server", default=_stack.DEFAULT_SERVER, help="PostgreSQL server URL")
    parser.add_argument("--redis-url", default=DEFAULT_REDIS)
    parser.add_argument("--keep-logs", action="store_true", help="keep the served processes' logs")
    parser.add_argument("--no-deflate", action="store_true",
                        help="clients do not offer permessage-deflate (browsers do)")
    parser.add_argument("--idle-seconds", type=float, default=3.0,
                        help="measure the idle worker's polling cost for this long")
    parser.add_argument("--profile-task", action="store_true",
                        help="afterwards, re-run one block's analysis in-process (query log, profile)")
    parser.add_argument("--gc-freeze", action="store_true",
                        help="experiment: after the warm-up, uvicorn collects and calls gc.freeze()")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--per-block", action="store_true", help="print every block's timeline (ms from t0)")
    args = parser.parse_args()
    random.seed(args.seed)

    log_dir = Path(tempfile.mkdtemp(prefix="realtime_bench_"))
    started = time.monotonic()
    ok = False
    failed = True
    try:
        with _stack.scratch_database(SCRATCH_DB, server=args.server) as db, _stack.Stack(log_dir) as stack:
            try:
                _stack.migrate(db)
                django_setup(db)
                world = world_create(args.warmup + args.blocks)
                from django.db import connections

                connections.close_all()
                port = _stack.free_port()
                env = _stack.served_env(database_url=db, redis_url=args.redis_url)
                gc_logs = {"uvicorn": log_dir / "uvicorn.gc", "worker": log_dir / "worker.gc"}
                web = stack.start("web", _stack.uvicorn_argv(
                    port, workers=args.web_workers,
                    gc_log=gc_logs["uvicorn"] if args.web_workers == 1 else None), env=env)
                worker = stack.start("worker", _stack.worker_argv(
                    interval=args.worker_interval, gc_log=gc_logs["worker"]), env=env)
                base = f"http://127.0.0.1:{port}"
                ready_s = _stack.wait_http(f"{base}/healthz", alive=[web, worker])
                print(f"# realtime_bench: PostgreSQL {SCRATCH_DB}, Redis {args.redis_url}, uvicorn on "
                      f":{port} (ready in {ready_s:.1f} s), setup {time.monotonic() - started:.1f} s",
                      flush=True)
                load_before = os.getloadavg()[0]
                pids = {"uvicorn": web.pid, "worker": worker.pid, "bench": os.getpid()}
                out = asyncio.run(run_clients(args, base, world, args.redis_url, pids))
                print(f"# host: {os.cpu_count()} CPUs, load average {load_before:.1f} before the clients, "
                      f"{os.getloadavg()[0]:.1f} after (other work on the host lengthens the tail)",
                      flush=True)
                out["gc"] = {name: _stack.gc_pauses(path) for name, path in gc_logs.items()}
                ok = analyse(args, out)
                if args.profile_task and out["queued"]:
                    from django.conf import settings

                    settings.DEBUG = True  # record query times
                    profile_task(out["queued"][-1].height, world.chain.chain_id)
                failed = False
            except BaseException:
                for name in ("web", "worker"):
                    tail = stack.log_tail(name)
                    if tail:
                        print(f"--- {name} log (last lines) ---\n{tail}", file=sys.stderr)
                raise
            finally:
                if "django.db" in sys.modules:
                    from django.conf import settings

                    if settings.configured:
                        from django.db import connections

                        connections.close_all()
    finally:
        if args.keep_logs or failed:
            print(f"# logs kept in {log_dir}", file=sys.stderr)
        else:
            shutil.rmtree(log_dir, ignore_errors=True)
    print(f"\n# total {time.monotonic() - started:.1f} s; {'PASS' if ok else 'FAIL'}", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
