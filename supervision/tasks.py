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
