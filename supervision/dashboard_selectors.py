"""Reads that only the dashboard pages need (the API's selectors live in businesschain.selectors and
supervision.selectors / supervision.penetration). Query counts are bounded: none loops over rows."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.db.models import Count, Max, Q, QuerySet
from django.db.models.functions import TruncMinute
from django.utils import timezone

from businesschain.models import Block, Chain, Entity, RejectedSubmission, Role, Transaction
from supervision.models import Alert

SHANGHAI = ZoneInfo("Asia/Shanghai")
RATE_WINDOW = timedelta(minutes=10)


@dataclass(frozen=True, slots=True)
class ChainRow:
    """One line of the overview's chain table."""

    id: str
    name: str
    status: str
    height: int
    head_hash: str
    last_block_at: datetime | None
    lag_seconds: int | None
    blocks_behind: int | None
    blocks_per_minute: float
    stall_seconds: int
    overdue: bool


def chain_overview(*, now: datetime | None = None) -> list[ChainRow]:
    """Every chain with its head, lag, block rate over the last 10 minutes and, when a refused
    submission told us of a higher height since the last accepted block, how far behind we are."""
    now = now or timezone.now()
    chains = list(Chain.objects.order_by("id"))
    recent = dict(
        Block.objects.filter(received_at__gte=now - RATE_WINDOW)
        .values_list("chain_id")
        .annotate(n=Count("id"))
        .values_list("chain_id", "n")
    )
    refused = {
        row["chain_id_text"]: row
        for row in RejectedSubmission.objects.filter(height__isnull=False)
        .values("chain_id_text")
        .annotate(max_height=Max("height"), last=Max("received_at"))
    }
    return [_chain_row(c, now=now, recent=recent.get(c.id, 0), refused=refused.get(c.id)) for c in chains]


def chain_row(chain: Chain, *, now: datetime | None = None) -> ChainRow:
    """The overview's line for one chain (the chain page), from that chain's rows only."""
    now = now or timezone.now()
    recent = Block.objects.filter(chain_id=chain.id, received_at__gte=now - RATE_WINDOW).count()
    refused = (
        RejectedSubmission.objects.filter(chain_id_text=chain.id, height__isnull=False)
        .aggregate(max_height=Max("height"), last=Max("received_at"))
    )
    return _chain_row(chain, now=now, recent=recent, refused=refused if refused["last"] else None)


def _chain_row(chain: Chain, *, now: datetime, recent: int, refused: Mapping[str, Any] | None) -> ChainRow:
    lag = int((now - chain.last_block_at).total_seconds()) if chain.last_block_at else None
    behind = None
    if refused and (chain.last_block_at is None or refused["last"] >= chain.last_block_at):
        gap = refused["max_height"] - chain.head_height
        behind = gap if gap > 0 else None
    return ChainRow(
        id=chain.id,
        name=chain.name,
        status=chain.status,
        height=chain.head_height,
        head_hash=chain.head_hash,
        last_block_at=chain.last_block_at,
        lag_seconds=max(lag, 0) if lag is not None else None,
        blocks_behind=behind,
        blocks_per_minute=round(recent / (RATE_WINDOW.total_seconds() / 60), 1),
        stall_seconds=int(chain.stall_interval.total_seconds()),
        overdue=lag is not None and lag > chain.stall_interval.total_seconds(),
    )


def blocks_per_minute_series(
    *, now: datetime | None = None, minutes: int = 30
) -> tuple[list[str], dict[str, list[int]]]:
    """Blocks received per chain in each of the last `minutes` minutes (Asia/Shanghai labels),
    zero-filled; one grouped query."""
    now = (now or timezone.now()).astimezone(SHANGHAI)
    end = now.replace(second=0, microsecond=0)
    start = end - timedelta(minutes=minutes - 1)
    buckets = [start + timedelta(minutes=i) for i in range(minutes)]
    index = {b: i for i, b in enumerate(buckets)}
    series: dict[str, list[int]] = {c: [0] * minutes for c in Chain.objects.values_list("id", flat=True)}
    rows = (
        Block.objects.filter(received_at__gte=start)
        .annotate(minute=TruncMinute("received_at", tzinfo=SHANGHAI))
        .values("chain_id", "minute")
        .annotate(n=Count("id"))
    )
    for row in rows:
        minute = row["minute"].astimezone(SHANGHAI).replace(second=0, microsecond=0)
        if minute in index:
            series.setdefault(row["chain_id"], [0] * minutes)[index[minute]] += row["n"]
    return [b.strftime("%H:%M") for b in buckets], series


def alert_counts_by_severity() -> dict[str, dict[str, int]]:
    """`{severity: {status: n}}` over all alerts."""
    counts: dict[str, dict[str, int]] = defaultdict(dict)
    for row in Alert.objects.order_by().values("severity", "status").annotate(n=Count("id")):
        counts[row["severity"]][row["status"]] = row["n"]
    return dict(counts)


def alert_filter_choices() -> dict[str, list[str]]:
    """The codes and chains that occur, for the filter drop-downs."""
    return {
        "codes": sorted(set(Alert.objects.order_by().values_list("code", flat=True).distinct())),
        "chains": list(Chain.objects.order_by("id").values_list("id", flat=True)),
    }


def recent_blocks(*, chain_id: str, before: int | None = None, limit: int = 50) -> list[Block]:
    qs = Block.objects.filter(chain_id=chain_id)
    if before is not None:
        qs = qs.filter(height__lt=before)
    return list(qs.order_by("-height")[:limit])


def block_transactions(block: Block) -> QuerySet[Transaction]:
    return Transaction.objects.filter(block=block).order_by("index")


# --- entities -----------------------------------------------------------------------------------


def entity_names(ids: Iterable[str]) -> dict[str, tuple[str, str]]:
    """`{id: (name, kind)}` for the registered entities among `ids` (one query)."""
    return {
        e["id"]: (e["name"], e["kind"])
        for e in Entity.objects.filter(id__in=set(ids)).values("id", "name", "kind")
    }


# --- related parties ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RelatedReason:
    """Why two entities are related (supervision API §1 "Related parties")."""

    kind: str  # "same_group" / "shared_person" / "direct_stake"
    person: str = ""  # shared_person
    holder: str = ""  # direct_stake
    issuer: str = ""
    share: str = ""


def _parse_reason(text: str) -> RelatedReason:
    kind, _, rest = text.partition(":")
    if kind == "shared_person":
        return RelatedReason(kind=kind, person=rest)
    if kind == "direct_stake":
        pair, _, share = rest.rpartition(":")
        holder, _, issuer = pair.partition(">")
        return RelatedReason(kind=kind, holder=holder, issuer=issuer, share=share)
    return RelatedReason(kind=kind)


def entity_related_parties(*, entity_id: str, limit: int = 200) -> list[tuple[str, list[RelatedReason]]]:
    """The related parties of one entity with the reasons, from the cached ownership structure:
    its control group, the entities sharing a person in an active role with it, and those holding
    or held ≥ 5 % directly. Ids are not masked (the page masks what it shows)."""
    from supervision.analytics.ownership import RELATED_STAKE, SHARE_TOLERANCE
    from supervision.penetration import ownership_structure

    structure = ownership_structure()
    graph, roles, groups = structure.graph, structure.roles, structure.groups
    candidates = set(groups.members(groups.group_of(entity_id)))
    linked = set(roles.persons_of.get(entity_id, ()))
    if entity_id in roles.orgs_of:
        linked.add(entity_id)
    for person in linked:
        candidates |= roles.orgs_of.get(person, set())
        candidates.add(person)
    index = graph.index.get(entity_id)
    if index is not None:
        for matrix in (graph.W, graph.WT):
            row = matrix.getrow(index)
            for j, weight in zip(row.indices.tolist(), row.data.tolist(), strict=True):
                if weight >= RELATED_STAKE - SHARE_TOLERANCE:
                    candidates.add(graph.ids[j])
    candidates.discard(entity_id)
    related = structure.related()
    out = []
    for other in sorted(candidates):
        reasons = related.reasons(entity_id, other)
        if reasons:
            out.append((other, [_parse_reason(r) for r in reasons]))
        if len(out) >= limit:
            break
    return out


def entity_roles(*, entity_id: str, limit: int = 200) -> list[dict[str, Any]]:
    """Active roles held by a person, or held in an organisation."""
    rows = (
        Role.objects.filter(Q(org_id=entity_id) | Q(person_id=entity_id), active=True)
        .order_by("org_id", "role", "person_id")
        .values("org_id", "person_id", "role", "chain_id", "height")[:limit]
    )
    return [dict(row) for row in rows]
