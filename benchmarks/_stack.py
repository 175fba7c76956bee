"""Helpers for benchmarks that need the served stack: a scratch PostgreSQL database (created,
migrated, dropped), the production-ish environment of the served processes, and child processes
in their own process groups that are always stopped, even when the benchmark fails.

    with scratch_database("bench_x") as db, Stack() as stack:  # children stop, then the db goes
        migrate(db)
        env = served_env(database_url=db, redis_url="redis://127.0.0.1:6379/5")
        stack.start("web", uvicorn_argv(port), env=env)
        wait_http(f"http://127.0.0.1:{port}/healthz")

Not part of the product: only the standard library, psycopg and the project's `manage.py`.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
MANAGE = str(ROOT / "manage.py")
DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/"


# --- scratch database ----------------------------------------------------------------------------


def _admin_url(server: str) -> str:
    return server.rstrip("/") + "/postgres"


def _drop(server: str, name: str) -> None:
    with psycopg.connect(_admin_url(server), autocommit=True) as conn:
        # FORCE (PostgreSQL 13+) ends the served processes' connections that are still open.
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@contextlib.contextmanager
def scratch_database(name: str, *, server: str = DEFAULT_SERVER) -> Iterator[str]:
    """Create an empty database `name` (dropping a leftover of a crashed run first), yield its URL,
    drop it at the end whatever happened."""
    _drop(server, name)
    with psycopg.connect(_admin_url(server), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield server.rstrip("/") + "/" + name
    finally:
        _drop(server, name)


def migrate(database_url: str, *, extra_env: Mapping[str, str] | None = None) -> None:
    env = {**os.environ, "DJANGO_DEBUG": "1", "DATABASE_URL": database_url, **(extra_env or {})}
    env.pop("REDIS_URL", None)
    done = subprocess.run([PYTHON, MANAGE, "migrate", "--noinput", "--verbosity", "0"], env=env,
                          cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"migrate failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")


# --- the served processes' environment ------------------------------------------------------------


def served_env(*, database_url: str, redis_url: str, allowed_hosts: str = "127.0.0.1",
               **extra: str) -> dict[str, str]:
    """Production settings (debug off) as `make serve` would run them behind a TLS proxy, without the
    HTTPS redirect (the benchmark speaks plain HTTP and says `X-Forwarded-Proto: https`)."""
    env = {k: v for k, v in os.environ.items() if k not in {"DJANGO_DEBUG", "TEST_DB_SUFFIX"}}
    env.update({
        "DJANGO_DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": allowed_hosts,
        "SECURE_SSL_REDIRECT": "0",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "PYTHONUNBUFFERED": "1",
        "LOG_LEVEL": os.environ.get("LOG_LEVEL", "WARNING"),
    })
    env.update(extra)
    return env


# Runs a module or script with a garbage-collector probe: every collection of the oldest generation,
# and any other one longer than 5 ms, is appended to a log as "<end time> <generation> <seconds>";
# SIGUSR1 makes the process collect and then `gc.freeze()`.
_GC_PROBE = """
import gc, runpy, sys, time
log = open(sys.argv[1], "a", buffering=1)
started = [0.0]
def probe(phase, info):
    if phase == "start":
        started[0] = time.perf_counter()
        return
    took = time.perf_counter() - started[0]
    if info["generation"] == 2 or took > 0.005:
        log.write(f"{time.time():.6f} {info['generation']} {took:.6f}\\n")
gc.callbacks.append(probe)
def freeze(signum, frame):  # SIGUSR1: move everything alive now out of the collector's reach
    gc.collect()
    gc.freeze()
import signal
signal.signal(signal.SIGUSR1, freeze)
target, sys.argv = sys.argv[2], sys.argv[2:]
if target.endswith(".py"):
    runpy.run_path(target, run_name="__main__")
else:
    sys.argv[0] = target
    runpy.run_module(target, run_name="__main__", alter_sys=True)
"""


def _python(gc_log: Path | None) -> list[str]:
    return [PYTHON, "-c", _GC_PROBE, str(gc_log)] if gc_log is not None else [PYTHON]


def uvicorn_argv(port: int, *, host: str = "127.0.0.1", workers: int = 1,
                 gc_log: Path | None = None) -> list[str]:
    """As run_stack starts the web server. With `gc_log` (one worker only: spawned workers do not
    inherit the probe), its garbage collections are logged (see `gc_pauses`), and SIGUSR1 makes it
    call `gc.freeze()` (an experiment: the product does not)."""
    return [*_python(gc_log), *([] if gc_log else ["-m"]), "uvicorn", "config.asgi:application",
            "--host", host, "--port", str(port), "--workers", str(workers), "--proxy-headers",
            "--no-server-header", "--log-level", "warning"]


def worker_argv(*, interval: float = 0.2, queues: str = "*", gc_log: Path | None = None) -> list[str]:
    """As run_stack starts the task worker (plus no startup delay, quiet)."""
    return [*_python(gc_log), MANAGE, "db_worker", "--queue-name", queues, "--no-reload", "--interval",
            str(interval), "--no-startup-delay", "--verbosity", "0"]


def gc_pauses(gc_log: Path) -> list[tuple[float, float, int]]:
    """(start, end, generation) of the collections a probed process logged."""
    pauses = []
    if gc_log.exists():
        for line in gc_log.read_text().splitlines():
            end, generation, took = line.split()
            pauses.append((float(end) - float(took), float(end), int(generation)))
    return pauses


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, *, timeout: float = 60.0, headers: Mapping[str, str] | None = None,
              alive: Sequence[subprocess.Popen[bytes]] = ()) -> float:
    """Poll `url` until it answers 200; seconds waited. Fails early if a child in `alive` died."""
    started = time.monotonic()
    request = urllib.request.Request(url, headers=dict(headers or {}))
    while True:
        for proc in alive:
            if proc.poll() is not None:
                raise RuntimeError(f"{proc.args!r} exited with {proc.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(request, timeout=2) as response:
                if response.status == 200:
                    return time.monotonic() - started
        except (OSError, urllib.error.URLError):
            pass
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"{url} did not answer within {timeout:.0f} s")
        time.sleep(0.1)


def _tree(pid: int) -> list[int]:
    pids, todo = [], [pid]
    while todo:
        current = todo.pop()
        pids.append(current)
        for task in Path(f"/proc/{current}/task").glob("*"):
            with contextlib.suppress(OSError):
                todo += [int(c) for c in (task / "children").read_text().split()]
    return pids


def sched_seconds(pid: int, *, children: bool = True) -> tuple[float, float]:
    """(seconds on a CPU, seconds runnable but waiting for one) of a process, its threads and its
    children, from /proc/<pid>/task/*/schedstat (Linux); (0, 0) where unavailable. The second one
    says how much a process was slowed down by others on the host."""
    run = wait = 0
    for current in _tree(pid) if children else [pid]:
        for task in Path(f"/proc/{current}/task").glob("*"):
            with contextlib.suppress(OSError, ValueError):
                fields = (task / "schedstat").read_text().split()
                run += int(fields[0])
                wait += int(fields[1])
    return run / 1e9, wait / 1e9


# --- children ------------------------------------------------------------------------------------


class Stack(contextlib.ExitStack):
    """Child processes, each in its own session (process group), stopped with SIGTERM then SIGKILL
    on exit; SIGTERM/SIGHUP to the benchmark also unwinds (`KeyboardInterrupt`) so nothing leaks."""

    def __init__(self, log_dir: Path | None = None) -> None:
        super().__init__()
        self.children: dict[str, subprocess.Popen[bytes]] = {}
        self.logs: dict[str, Path] = {}
        self.log_dir = log_dir
        self._old_handlers: dict[int, Any] = {}

    def __enter__(self) -> Stack:
        super().__enter__()
        for signum in (signal.SIGTERM, signal.SIGHUP):
            self._old_handlers[signum] = signal.signal(signum, self._interrupt)
        self.callback(self._restore_signals)
        self.callback(self.stop_all)
        return self

    @staticmethod
    def _interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    def _restore_signals(self) -> None:
        for signum, handler in self._old_handlers.items():
            signal.signal(signum, handler)

    def start(self, name: str, argv: Sequence[str], *, env: Mapping[str, str]) -> subprocess.Popen[bytes]:
        log: IO[bytes] | int = subprocess.DEVNULL
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            path = self.log_dir / f"{name}.log"
            self.logs[name] = path
            log = path.open("wb")
        try:
            proc = subprocess.Popen(list(argv), env=dict(env), cwd=ROOT, stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        finally:
            if not isinstance(log, int):
                log.close()
        self.children[name] = proc
        return proc

    def stop(self, name: str, *, timeout: float = 10.0) -> None:
        proc = self.children.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)

    def stop_all(self) -> None:
        for name in list(self.children):
            self.stop(name)

    def log_tail(self, name: str, lines: int = 30) -> str:
        path = self.logs.get(name)
        if path is None or not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
