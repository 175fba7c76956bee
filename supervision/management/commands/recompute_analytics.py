"""`recompute_analytics`: rebuild every analytics result from the stored index — the ownership
structure and control groups, structure rules, and every block's trade rules and threshold
crossings — with a progress bar on stderr. Alerts already raised are kept (never duplicated)."""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from django.core.management.base import BaseCommand, CommandParser

from supervision.surveillance import analytics_recompute


class ProgressBar:
    """`recompute_analytics  37% |███████░░░░░░░░░░░░░| 3700/10000 blocks 12.3 s`, redrawn in place."""

    def __init__(self, stream: TextIO, width: int = 30) -> None:
        self.stream = stream
        self.width = width
        self.started = time.monotonic()
        self.last_draw = 0.0

    def __call__(self, done: int, total: int, stage: str = "blocks") -> None:
        now = time.monotonic()
        if done < total and now - self.last_draw < 0.1:
            return
        self.last_draw = now
        fraction = done / total if total else 1.0
        filled = int(self.width * fraction)
        bar = "█" * filled + "░" * (self.width - filled)
        self.stream.write(f"\rrecompute_analytics {fraction:4.0%} |{bar}| {done}/{total} {stage} "
                          f"{now - self.started:.1f} s")
        if done >= total:
            self.stream.write("\n")
        self.stream.flush()


class Command(BaseCommand):
    help = "Rebuild the ownership structure, control groups, alerts and threshold crossings from scratch."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")

    def handle(self, *args: Any, **options: Any) -> None:
        progress = None if options["no_progress"] else ProgressBar(getattr(self.stderr, "_out", sys.stderr))
        report = analytics_recompute(progress=progress)
        self.stdout.write(self.style.SUCCESS(report.summary()))
