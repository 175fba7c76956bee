"""Anchor every accepted business block (ECP/1 §6). `block_accepted` is sent on commit, so the
blocks are stored; if creating the anchors fails here, the sealer's sweep anchors them later."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from django.db import DatabaseError
from django.dispatch import receiver

from businesschain.signals import block_accepted
from supervision.anchoring import anchors_create

log = logging.getLogger(__name__)


@receiver(block_accepted, dispatch_uid="supervision.anchor_accepted_blocks")
def anchor_accepted_blocks(sender: Any, *, chain_id: str, heights: Sequence[int],
                           block_hashes: Sequence[str], **kwargs: Any) -> None:
    try:
        anchors_create(chain_id=chain_id, heights=heights, block_hashes=block_hashes)
    except DatabaseError:
        log.exception("could not anchor %s heights %s now; the sealer's sweep will", chain_id, list(heights))
