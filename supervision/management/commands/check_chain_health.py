"""`manage.py check_chain_health [--loop] [--interval 30]`: mark chains that went silent as stalled
and raise `chain_stalled` alerts (supervision API §1). Once by default; every `--interval` seconds
with `--loop` (the stack runner starts it that way)."""

from __future__ import annotations

import signal
import threading
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import close_old_connections

from supervision.services import chains_check_stalled


class Command(BaseCommand):
    help = "Mark silent business chains as stalled and raise chain_stalled alerts."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--loop", action="store_true", help="keep checking until stopped")
        parser.add_argument("--interval", type=float, default=30.0, help="seconds between checks")

    def handle(self, *args: Any, loop: bool = False, interval: float = 30.0, **options: Any) -> None:
        stop = threading.Event()
        if loop:
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: stop.set())
        while True:
            try:
                result = chains_check_stalled()
            except Exception as error:  # keep the loop alive through a database hiccup
                if not loop:
                    raise
                self.stderr.write(f"check_chain_health: {error}")
            else:
                if result.stalled or not loop:
                    self.stdout.write(
                        f"checked {result.checked} chains; newly stalled: "
                        f"{', '.join(result.stalled) or 'none'}"
                    )
            if not loop or stop.wait(max(interval, 1.0)):
                break
            close_old_connections()  # between runs: drop a connection the database closed
