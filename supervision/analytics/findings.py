"""What an analytics rule reports: one finding, ready to become (or refresh) an alert.

The fingerprint is what makes "the same finding is raised once" work (supervision API §1): it is
built only from the code and the sorted identities of the finding, never from timestamps of when
it was seen, so a repeat maps onto the existing alert.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

SHARE_TOLERANCE = 1e-9
"""Float slack for share thresholds: a fraction computed as 0.5 × 0.5 must meet 25 %, 24.99 % must not."""


@dataclass(frozen=True, slots=True)
class Finding:
    """One rule firing. `facts` holds JSON-safe numbers and strings for the alert text (decimals as str)."""

    code: str
    fingerprint: str
    chain: str | None = None
    height: int | None = None
    tx_ids: tuple[str, ...] = ()
    entities: tuple[str, ...] = ()
    facts: Mapping[str, object] = field(default_factory=dict)
