"""`audit_chains`: recompute every hash and signature of the business chains and the supervision
chain from the stored rows; exit 1 naming each mismatch (chain, height, transaction)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from supervision.audit import AuditScope, ProgressBar, audit_chains
from supervision.models import AuditRun


class Command(BaseCommand):
    help = ("Audit the stored chains. Without options: every business chain, every anchor and the "
            "supervision chain. --chain limits to business chains (their anchors included), "
            "--supervision to the supervision chain; --from/--to bound the heights of the business "
            "chains when any is selected, else of the supervision chain.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--chain", action="append", dest="chains", metavar="ID",
                            help="a business chain to audit (repeatable)")
        parser.add_argument("--supervision", action="store_true", help="audit the supervision chain")
        parser.add_argument("--from", type=int, dest="height_from", metavar="HEIGHT")
        parser.add_argument("--to", type=int, dest="height_to", metavar="HEIGHT")
        parser.add_argument("--scheduled", action="store_true", help="record the run as scheduled")
        parser.add_argument("--no-record", action="store_true", help="do not record an AuditRun")
        parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
        parser.add_argument("--limit", type=int, default=100, help="mismatches to print (default 100)")

    def handle(self, *args: Any, **options: Any) -> None:
        chains = tuple(options["chains"]) if options["chains"] else None
        if chains is None and not options["supervision"]:
            scope = AuditScope(height_from=options["height_from"], height_to=options["height_to"])
        else:
            scope = AuditScope(chains=chains, business=chains is not None,
                               supervision=options["supervision"],
                               height_from=options["height_from"], height_to=options["height_to"])
        progress = None if options["no_progress"] else ProgressBar(stream=getattr(self.stderr, "_out", None))
        report = audit_chains(
            scope=scope, progress=progress, record=not options["no_record"],
            trigger=AuditRun.Trigger.SCHEDULED if options["scheduled"] else AuditRun.Trigger.MANUAL,
        )
        shown = report.mismatches[:max(options["limit"], 0)]
        for mismatch in shown:
            self.stdout.write(f"MISMATCH {mismatch}")
        if report.mismatch_count > len(shown):
            kept = len(report.mismatches)
            where = f" (the first {kept} are in audit run #{report.run_id})" if report.run_id else ""
            self.stdout.write(f"… and {report.mismatch_count - len(shown)} more{where}")
        if report.ok:
            self.stdout.write(self.style.SUCCESS(report.summary()))
            return
        raise CommandError(report.summary(), returncode=1)
