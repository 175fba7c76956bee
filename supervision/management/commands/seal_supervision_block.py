"""`seal_supervision_block`: seal the pending anchors now (ECP/1 §6, on demand)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from supervision.anchoring import anchors_sweep, supervision_block_seal


class Command(BaseCommand):
    help = "Anchor accepted blocks that lack an anchor, then seal a supervision block over the pending ones."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--all", action="store_true",
                            help="keep sealing until nothing is pending (blocks of at most SEAL_MAX_PENDING)")
        parser.add_argument("--max-anchors", type=int, default=None,
                            help="anchors per block (default SEAL_MAX_PENDING)")

    def handle(self, *args: Any, **options: Any) -> None:
        anchors_sweep(full=True)
        sealed = 0
        while True:
            result = supervision_block_seal(max_anchors=options["max_anchors"])
            if result is None:
                break
            sealed += 1
            self.stdout.write(f"sealed supervision block {result.height} {result.block_hash} "
                              f"({result.anchor_count} anchors, {result.seconds * 1000:.0f} ms)")
            if not options["all"]:
                break
        if not sealed:
            self.stdout.write("no pending anchors: nothing to seal")
