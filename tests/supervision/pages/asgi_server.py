"""A live ASGI server for browser tests: uvicorn on its own event loop in a thread of the test process.

Why a thread and not a subprocess: the server must see the test database (a transactional test
database on PostgreSQL, the shared-cache in-memory one on SQLite) and, with the in-memory channel
layer, the very layer object the test publishes to. Code that must run "inside the server" (raising
an alert, so its on-commit publish reaches the server's channel layer on the server's loop) goes
through `LiveServer.call`, which runs it in a `sync_to_async` thread of the server's loop — exactly
where a Django view would run it.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import uvicorn
from asgiref.sync import sync_to_async
from django.db import close_old_connections, connections

T = TypeVar("T")


class LiveServer:
    def __init__(self, app: Any) -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", 0))
        self.port = self._socket.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app, lifespan="off", log_config=None, log_level="warning", access_log=False,
            timeout_graceful_shutdown=2, ws_ping_interval=None,
        )
        self._server = uvicorn.Server(config)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._run, name="live-asgi-server", daemon=True)
        self._error: BaseException | None = None

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        try:
            loop.run_until_complete(self._server.serve(sockets=[self._socket]))
        except BaseException as error:  # surfaced by start()/stop()
            self._error = error
        finally:
            loop.close()

    def start(self, timeout: float = 10.0) -> None:
        self._thread.start()
        waited = 0.0
        while not self._server.started:
            if self._error is not None or not self._thread.is_alive():
                raise RuntimeError("the live server did not start") from self._error
            if waited > timeout:
                raise TimeoutError("the live server did not start in time")
            threading.Event().wait(0.02)
            waited += 0.02

    def call(self, func: Callable[..., T], /, *args: Any, timeout: float = 30.0, **kwargs: Any) -> T:
        """Run `func(*args, **kwargs)` in a sync thread of the server's event loop and return its
        result; that thread's database connections are closed afterwards."""

        def run() -> T:
            try:
                return func(*args, **kwargs)
            finally:
                connections.close_all()

        assert self._loop is not None
        future = asyncio.run_coroutine_threadsafe(sync_to_async(run)(), self._loop)
        return future.result(timeout)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._socket.close()
        close_old_connections()
