"""Served under ASGI (uvicorn), requests share pooled PostgreSQL connections instead of opening
a backend each (Django runs every ASGI request in a thread of its own)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from django.db import connection

from tests.chainkit import TestChain
from tests.config.test_production import _free_port, production_env

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="the pool is PostgreSQL's"),
]


def _sessions(database: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute("SELECT sessions FROM pg_stat_database WHERE datname = %s", [database])
        return int(cursor.fetchone()[0])


def test_served_requests_reuse_pooled_connections(transactional_db):
    sse = TestChain.register("sse")
    settings = connection.settings_dict
    database = settings["NAME"]
    port = _free_port()
    env = production_env(
        DATABASE_URL=f"postgresql://{settings['USER']}@{settings['HOST']}:{settings['PORT']}/{database}",
        SECURE_SSL_REDIRECT="0",
    )
    env.pop("REDIS_URL", None)
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "config.asgi:application", "--host", "127.0.0.1",
         "--port", str(port), "--log-level", "warning"],
        cwd=ROOT, env=env, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.3)
        with httpx.Client(base_url=base, headers={"Authorization": f"Token {sse.key}"}, timeout=10) as client:
            assert client.get("/api/v1/chains/sse").status_code == 200  # the pool is open now
            before = _sessions(database)
            for _ in range(20):
                assert client.get("/api/v1/chains/sse").status_code == 200
        # Stats reach pg_stat_database when a backend goes idle; give them a moment.
        time.sleep(1.2)
        assert _sessions(database) - before <= 2  # not one backend per request
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)


def test_postgresql_sessions_do_not_jit_compile(db):
    """JIT is off for every connection the application opens (settings): the analysis's index-probe
    loops would otherwise be compiled for 10–30 ms each."""
    with connection.cursor() as cursor:
        cursor.execute("SHOW jit")
        assert cursor.fetchone()[0] == "off"
