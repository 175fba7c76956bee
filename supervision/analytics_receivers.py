"""Ingestion announces accepted blocks (on commit); analytics react by queueing one background task
per block. Nothing is analysed here: the receiver runs inside the ingestion request."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from django.dispatch import receiver

from businesschain.signals import block_accepted
from supervision.tasks import block_analyse_task

log = logging.getLogger(__name__)


@receiver(block_accepted, dispatch_uid="supervision.analytics.block_accepted")
def queue_block_analysis(*, chain_id: str, heights: Sequence[int], **_: Any) -> None:
    for height in heights:
        try:
            block_analyse_task.enqueue(chain_id=chain_id, height=int(height))
        except Exception:  # the block is stored already; `recompute_analytics` catches up
            log.exception("could not queue analytics for %s#%s", chain_id, height)
