"""Background tasks (django-tasks). Each takes JSON arguments, fetches what it needs by id and
calls one service. Worker: `manage.py db_worker --queue-name analytics,default,audit`."""

from __future__ import annotations

from typing import Any

from django_tasks import task

# --- analytics --------------------------------------------------------------------------------


@task(queue_name="analytics")
def block_analyse_task(chain_id: str, height: int) -> dict[str, Any]:
    """Run the per-block analytics rules for one accepted business block (supervision API §1)."""
    from supervision.surveillance import block_analyse  # keeps numpy/scipy out of enqueuers

    return block_analyse(chain_id=chain_id, height=height).as_json()


# --- end analytics ----------------------------------------------------------------------------


# --- audit ------------------------------------------------------------------------------------


@task(queue_name="audit")
def audit_chains_task(trigger: str = "scheduled", interval_seconds: float = 0.0) -> dict[str, Any]:
    """Run `audit_chains` over everything and record the result for the dashboard. A scheduled run
    is skipped when another one started within half of `interval_seconds` (several sealers)."""
    from supervision.audit import audit_chains, scheduled_audit_due

    if trigger == "scheduled" and interval_seconds \
            and not scheduled_audit_due(interval_seconds=interval_seconds):
        return {"skipped": True}
    report = audit_chains(trigger=trigger)
    return {"ok": report.ok, "run_id": report.run_id, "mismatches": report.mismatch_count,
            "transactions": report.transactions, "seconds": round(report.seconds, 3)}


# --- end audit --------------------------------------------------------------------------------
