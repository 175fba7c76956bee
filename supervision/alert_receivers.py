"""Chain-health alerts from ingestion's announcements (both sent on commit). Thin: each receiver
calls one service. A failure is logged, not raised: the submission it reacts to is already
stored and answered."""

from __future__ import annotations

import logging
from typing import Any

from django.dispatch import receiver

from businesschain.models import RejectedSubmission
from businesschain.signals import block_accepted, block_rejected
from supervision.services import alert_from_rejection, chain_status_announce

log = logging.getLogger(__name__)


@receiver(block_rejected, dispatch_uid="supervision.alerts.block_rejected")
def alert_on_rejection(*, rejection: RejectedSubmission, consensus_failure: bool = False,
                       **_: Any) -> None:
    try:
        alert_from_rejection(rejection=rejection, consensus_failure=consensus_failure)
    except Exception:
        log.exception("could not raise the alert for rejection %s", rejection.pk)


@receiver(block_accepted, dispatch_uid="supervision.alerts.block_accepted")
def announce_chain_status(*, chain_id: str, **_: Any) -> None:
    try:
        chain_status_announce(chain_id=chain_id)
    except Exception:
        log.exception("could not announce the status of chain %s", chain_id)
