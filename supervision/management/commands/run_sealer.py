"""`run_sealer`: the supervision-chain sealer loop that `make run` / `make serve` start.

Seals every SEAL_INTERVAL_SECONDS while anchors are pending, at once when SEAL_MAX_PENDING are,
sweeps for accepted blocks without an anchor, and enqueues the scheduled audit every
AUDIT_INTERVAL_SECONDS (default 600; 0 disables). Stops cleanly on SIGTERM or Ctrl-C. Several
sealers may run: the database lock lets exactly one seal each block.
"""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from supervision import keys
from supervision.anchoring import Sealer, SealResult

log = logging.getLogger("supervision.sealer")


class Command(BaseCommand):
    help = "Run the supervision-chain sealer until stopped."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--interval", type=float, default=None, help="seconds (SEAL_INTERVAL_SECONDS)")
        parser.add_argument("--max-pending", type=int, default=None, help="anchors (SEAL_MAX_PENDING)")
        parser.add_argument("--audit-interval", type=float, default=None,
                            help="seconds between scheduled audits (AUDIT_INTERVAL_SECONDS, 0 = off)")

    def handle(self, *args: Any, **options: Any) -> None:
        stop = threading.Event()

        def on_signal(signum: int, frame: Any) -> None:
            stop.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        interval = options["interval"] if options["interval"] is not None else settings.SEAL_INTERVAL_SECONDS
        max_pending = options["max_pending"] or settings.SEAL_MAX_PENDING
        audit_interval = (options["audit_interval"] if options["audit_interval"] is not None
                          else float(getattr(settings, "AUDIT_INTERVAL_SECONDS", 600)))
        key = keys.signing_key()  # fail fast on a missing key; generates one in development
        self.stdout.write(f"sealer: every {interval:g} s, at most {max_pending} anchors per block, "
                          f"key {key.fingerprint[:16]}…, audit every {audit_interval:g} s")

        def enqueue_audit() -> None:
            from supervision.tasks import audit_chains_task

            audit_chains_task.enqueue(trigger="scheduled", interval_seconds=audit_interval)

        def on_seal(result: SealResult) -> None:
            if options["verbosity"] > 1:
                self.stdout.write(f"sealed {result.height} ({result.anchor_count} anchors, "
                                  f"{result.seconds * 1000:.0f} ms)")

        Sealer(interval=interval, max_pending=max_pending, audit_interval=audit_interval,
               on_audit_due=enqueue_audit, stop=stop, on_seal=on_seal,
               tick=min(0.1, max(interval / 10, 0.01))).run()
        self.stdout.write("sealer stopped")
