"""存证核验 (supervision API §2): which evidence and disclosure transactions carry a document's SM3."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from businesschain.errors import InvalidInput
from businesschain.models import Block, Disclosure, EvidenceRecord
from gm.sm3 import new as sm3_new
from supervision.chain_selectors import receipt_url

_SM3_RE = re.compile(r"[0-9a-f]{64}")


def document_sm3(chunks: Iterable[bytes]) -> str:
    """SM3 of an uploaded file, streamed chunk by chunk (files of any size)."""
    h = sm3_new()
    for chunk in chunks:
        h.update(chunk)
    return h.hexdigest()


def sm3_checked(value: Any) -> str:
    if not isinstance(value, str) or not _SM3_RE.fullmatch(value.lower()):
        raise InvalidInput("sm3 must be 64 hexadecimal digits.", code="invalid",
                           errors=[{"path": "/sm3", "message": "64 hexadecimal digits expected"}])
    return value.lower()


def evidence_records(*, sm3: str) -> list[dict[str, Any]]:
    """Every `evidence` or `disclosure` transaction whose `doc_sm3` is `sm3`, oldest first, with
    the receipt that proves its block is in the supervision chain."""
    found: list[tuple[str, int, str, str, str]] = [
        (r.chain_id, r.height, r.tx_id, r.business_type, r.reference)
        for r in EvidenceRecord.objects.filter(doc_sm3=sm3).order_by("chain_id", "height", "id")
    ]
    found += [
        (d.chain_id, d.height, d.tx_id, "disclosure", f"{d.issuer_id}:{d.kind}")
        for d in Disclosure.objects.filter(doc_sm3=sm3).order_by("chain_id", "height", "id")
    ]
    blocks = {
        (chain, height): block_hash
        for chain, height, block_hash in Block.objects.filter(
            chain_id__in={f[0] for f in found}, height__in={f[1] for f in found}
        ).values_list("chain_id", "height", "block_hash")
    } if found else {}
    found.sort(key=lambda f: (f[0], f[1], f[2]))
    return [
        {
            "chain": chain, "height": height, "tx_id": tx_id, "business_type": business_type,
            "reference": reference, "receipt": receipt_url(blocks[(chain, height)]),
        }
        for chain, height, tx_id, business_type, reference in found
    ]
