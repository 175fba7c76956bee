"""`block_submit`: the ECP/1 §5 entry service. Checks run in the spec's order; a batch is stored
whole or not at all; a refusal stores only its rejection record."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from businesschain import bulk
from businesschain.errors import (
    Conflict,
    DomainError,
    InvalidInput,
    NotAuthenticated,
    NotFound,
    PermissionDenied,
    TooLarge,
)
from businesschain.indexing import TABLES, index_rows, position_rows, text
from businesschain.models import (
    Account,
    Block,
    Chain,
    ChainToken,
    ConcertParty,
    Disclosure,
    Entity,
    EntityRegistration,
    EvidenceRecord,
    Holding,
    HoldingSnapshot,
    Node,
    Position,
    RejectedSubmission,
    Role,
    Security,
    Trade,
    Transaction,
    Transfer,
)
from businesschain.protocol import schemas
from businesschain.protocol.hashing import first_duplicate
from businesschain.protocol.references import defines, references
from businesschain.registry import parsed_public_key
from businesschain.signals import block_accepted, block_rejected
from businesschain.verify import BlockRejected, ChainState, body_texts, has_valid_quorum, verify_block
from gm import sm2
from gm.sm3 import sm3_hex

log = logging.getLogger(__name__)

_APPEND_MODELS = {
    "transaction": Transaction,
    "entityregistration": EntityRegistration,
    "holdingsnapshot": HoldingSnapshot,
    "trade": Trade,
    "transfer": Transfer,
    "disclosure": Disclosure,
    "evidencerecord": EvidenceRecord,
}
# table → (model, conflict columns, newer_than column)
_LATEST_MODELS: dict[str, tuple[Any, tuple[str, ...], str | None]] = {
    "entity": (Entity, ("id",), None),
    "security": (Security, ("code",), None),
    "account": (Account, ("chain_id", "account"), None),
    "holding": (Holding, ("issuer_id", "holder_id"), "as_of"),
    "role": (Role, ("org_id", "person_id", "role"), None),
    "concertparty": (ConcertParty, ("issuer_id", "parties_key"), None),
}


_PLURAL = {"entity": "entities", "account": "accounts", "security": "securities"}


@dataclass
class SubmissionOutcome:
    chain_id: str
    next_height: int
    accepted: list[dict[str, Any]] = field(default_factory=list)
    duplicates: list[dict[str, Any]] = field(default_factory=list)

    @property
    def http_status(self) -> int:
        return 201 if self.accepted else 200

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"chain": self.chain_id, "accepted": self.accepted}
        if self.duplicates:
            data["duplicates"] = self.duplicates
        data["next_height"] = self.next_height
        return data


@dataclass
class _Context:
    """What the rejection record needs to know about a request, filled in as checks pass."""

    chain_id: str
    token: ChainToken | None
    presented_key: str | None
    body: bytes
    remote_addr: str
    height: int | None = None
    block_hash: str = ""
    competing: schemas.Block | None = None


def block_submit(
    *, chain_id: str, body: bytes | None, token: ChainToken | None, presented_key: str | None = None,
    authenticated_user: bool = False, remote_addr: str = "", content_length: int | None = None,
    now: datetime | None = None,
) -> SubmissionOutcome:
    """Verify and store a `POST chains/{chain}/blocks` body, or record why it was refused.

    `body` is None when the request was too large to read; `presented_key` is the key sent, valid
    or not (its prefix goes on the rejection record). Raises a `DomainError` whose code and
    extra keys are the ECP/1 §5 error answer.
    """
    context = _Context(chain_id=chain_id, token=token, presented_key=presented_key, body=body or b"",
                       remote_addr=remote_addr)
    try:
        return _submit(context, body=body, authenticated_user=authenticated_user,
                       content_length=content_length, now=now or timezone.now())
    except DomainError as error:
        rejection_record(context, error)
        raise


def _submit(
    context: _Context, *, body: bytes | None, authenticated_user: bool, content_length: int | None,
    now: datetime,
) -> SubmissionOutcome:
    token = context.token
    if token is None:
        if context.presented_key is not None:
            raise NotAuthenticated("This key is not a registered chain's API key, or it has been revoked.")
        if authenticated_user:
            raise PermissionDenied("Only a chain's own API key may submit its blocks.")
        raise NotAuthenticated("Send `Authorization: Token <key>` with the chain's API key.")
    # A valid key names a registered chain, so only another chain's key needs the lookup.
    if token.chain_id != context.chain_id:
        if not Chain.objects.filter(id=context.chain_id).exists():
            raise NotFound(f"Chain {context.chain_id!r} is not registered.", code="unknown_chain")
        raise PermissionDenied(f"This API key belongs to another chain, not {context.chain_id!r}.")
    limit = settings.ECP_MAX_BODY_BYTES
    if body is None or (content_length or 0) > limit or len(body) > limit:
        raise TooLarge(f"The request body is over {limit} bytes.", limit=limit)

    payload = schemas.load_json(body)
    raw_blocks = schemas.parse_submission(payload)
    batch = schemas.is_batch(payload)
    for index, raw in enumerate(raw_blocks):  # size before schema, for every block of a batch
        if schemas.transaction_count(raw) > settings.ECP_MAX_TRANSACTIONS:
            where: dict[str, Any] = {"index": index} if batch else {}
            raise TooLarge(f"A block may carry at most {settings.ECP_MAX_TRANSACTIONS} transactions.",
                           limit=settings.ECP_MAX_TRANSACTIONS, **where)
    blocks = schemas.parse_batch(payload)
    return _store(token.chain_id, blocks, batch=batch, context=context, now=now)


@transaction.atomic
def _store(
    chain_id: str, blocks: Sequence[schemas.Block], *, batch: bool, context: _Context, now: datetime,
) -> SubmissionOutcome:
    chain = Chain.objects.select_for_update().get(pk=chain_id)  # serialise on the chain head
    node_sets = _node_sets(chain.id)
    head_height, head_hash, head_timestamp = chain.head_height, chain.head_hash, chain.head_timestamp
    outcome = SubmissionOutcome(chain_id=chain.id, next_height=chain.next_height)
    batch_nonces: set[str] = set()
    defined: dict[str, set[str]] = {"entities": set(), "accounts": set(), "securities": set()}
    skew = timedelta(seconds=settings.ECP_MAX_CLOCK_SKEW_SECONDS)

    for index, block in enumerate(blocks):
        where = {"index": index} if batch else {}
        header = block.header
        context.height, context.block_hash, context.competing = header.height, block.block_hash, None
        if header.chain != chain.id:
            raise InvalidInput(
                f"header.chain is {header.chain!r} but the URL names {chain.id!r}.",
                code="chain_mismatch", **where,
            )
        if header.height <= head_height:
            stored_hash = _stored_hash(chain, header.height, outcome)
            if stored_hash == block.block_hash:
                outcome.duplicates.append({"height": header.height, "block_hash": block.block_hash})
                continue
            context.competing = block
            raise Conflict(
                f"A different block is already stored at height {header.height}.",
                code="fork", stored_hash=stored_hash, **where,
            )
        if header.height > head_height + 1:
            raise Conflict(
                f"Height {header.height} is above the next expected height {head_height + 1}.",
                code="height_gap", expected_height=head_height + 1, **where,
            )
        node_set = _node_set_for(node_sets, header.height)
        state = ChainState(
            head_height=head_height, head_hash=head_hash, head_timestamp=head_timestamp,
            nodes=node_set.keys, quorum=node_set.quorum,
        )
        try:
            bodies = body_texts(block)
            verdict = verify_block(block, state, now=now, max_skew=skew, bodies=bodies)
        except BlockRejected as error:
            error.extra.update(where)
            raise
        _check_duplicate_nonces(block, batch_nonces, where)

        unresolved = _unresolved(chain, block, defined)
        verification = verdict.as_json(node_set.quorum, node_set.version)
        verification["unresolved"] = unresolved
        stored = Block.objects.create(
            chain=chain, height=header.height, block_hash=block.block_hash,
            prev_hash=header.prev_hash, timestamp=header.timestamp, tx_count=header.tx_count,
            tx_root=header.tx_root, signatures=[{"node": s.node, "sig": s.sig} for s in block.signatures],
            node_set_id=node_set.id, verification=verification, received_at=now,
        )
        try:
            with transaction.atomic():  # a savepoint: the constraint's verdict becomes an answer
                _write_index(chain.id, stored, block, bodies)
        except IntegrityError as error:
            raise _stored_duplicate(chain, block, where) from error
        head_height, head_hash, head_timestamp = header.height, block.block_hash, header.timestamp
        outcome.accepted.append({
            "height": header.height,
            "block_hash": block.block_hash,
            "receipt": f"/api/v1/receipts/{block.block_hash}",
        })

    if outcome.accepted:
        chain.head_height, chain.head_hash, chain.head_timestamp = head_height, head_hash, head_timestamp
        chain.last_block_at = now
        update = ["head_height", "head_hash", "head_timestamp", "last_block_at"]
        # A chain that delivers again is active; a fork or stall stays on record as its alert.
        if chain.status in (Chain.Status.STALLED, Chain.Status.FORKED):
            chain.status = Chain.Status.ACTIVE
            update.append("status")
        chain.save(update_fields=update)
        heights = [a["height"] for a in outcome.accepted]
        hashes = [a["block_hash"] for a in outcome.accepted]
        transaction.on_commit(lambda: block_accepted.send(
            sender=Chain, chain_id=chain.id, heights=heights, block_hashes=hashes,
        ))
    outcome.next_height = head_height + 1
    return outcome


def _stored_hash(chain: Chain, height: int, outcome: SubmissionOutcome) -> str:
    for accepted in outcome.accepted:
        if accepted["height"] == height:
            return str(accepted["block_hash"])
    return str(Block.objects.filter(chain=chain, height=height).values_list("block_hash", flat=True)
               .first() or "")


@dataclass(frozen=True)
class _NodeSetKeys:
    id: int
    version: int
    quorum: int
    valid_from_height: int
    keys: dict[str, sm2.SM2PublicKey]


def _node_sets(chain_id: str) -> list[_NodeSetKeys]:
    """Every node-set version of the chain with its parsed keys, newest first, in one query."""
    by_id: dict[int, _NodeSetKeys] = {}
    nodes = (Node.objects.filter(node_set__chain_id=chain_id).order_by()
             .values_list("node_set_id", "node_set__version", "node_set__quorum",
                          "node_set__valid_from_height", "node_id", "public_key"))
    for set_id, version, quorum, valid_from, node_id, public_key in nodes:
        node_set = by_id.get(set_id)
        if node_set is None:
            node_set = by_id[set_id] = _NodeSetKeys(set_id, version, quorum, valid_from, {})
        node_set.keys[node_id] = parsed_public_key(public_key)
    return sorted(by_id.values(), key=lambda n: n.version, reverse=True)


def _node_set_for(node_sets: Sequence[_NodeSetKeys], height: int) -> _NodeSetKeys:
    for node_set in node_sets:  # newest first
        if node_set.valid_from_height <= height:
            return node_set
    return node_sets[-1]


def _check_duplicate_nonces(block: schemas.Block, batch_nonces: set[str], where: dict[str, int]) -> None:
    """Repeats inside the request. Repeats of stored transactions are found by the (chain, nonce)
    unique constraint when the block is written: see `_stored_duplicate`."""
    nonces = [tx.nonce for tx in block.transactions]
    tx_index = first_duplicate([*batch_nonces, *nonces])
    if tx_index is not None:
        tx_index -= len(batch_nonces)
        raise BlockRejected(
            f"transactions[{tx_index}].nonce {nonces[tx_index]!r} repeats an earlier transaction.",
            code="duplicate_tx", tx_index=tx_index, **where,
        )
    batch_nonces.update(nonces)


def _stored_duplicate(chain: Chain, block: schemas.Block, where: dict[str, int]) -> BlockRejected:
    """The `duplicate_tx` answer for a block whose write hit the (chain, nonce) constraint."""
    nonces = [tx.nonce for tx in block.transactions]
    stored = bulk.existing(Transaction, "nonce", nonces, chain_id=chain.id)
    tx_index = next((i for i, n in enumerate(nonces) if n in stored), None)
    if tx_index is None:  # not a nonce repeat: a genuine fault, not the chain's
        raise RuntimeError(f"unexpected constraint violation storing {chain.id}#{block.header.height}")
    return BlockRejected(
        f"transactions[{tx_index}].nonce {nonces[tx_index]!r} is already stored on this chain.",
        code="duplicate_tx", tx_index=tx_index, **where,
    )


class _KnownIds:
    """Identifiers this process has seen stored: entities, securities and accounts are never
    deleted, so a hit needs no query. Only saves time; a miss asks the database."""

    def __init__(self, limit: int = 500_000) -> None:
        self.limit = limit
        self.ids: set[tuple[str, str, str]] = set()  # (kind, chain or "", id)

    def add(self, keys: Iterable[tuple[str, str, str]]) -> None:
        if len(self.ids) > self.limit:
            self.ids.clear()
        self.ids.update(keys)


_KNOWN = _KnownIds()


def forget_known_identifiers() -> None:
    """For tests, whose stored rows are rolled back."""
    _KNOWN.ids.clear()


def _unresolved(chain: Chain, block: schemas.Block, defined: dict[str, set[str]]) -> dict[str, list[str]]:
    """References to entities, accounts and securities the supervisor has not seen (ECP/1 §3)."""
    wanted: dict[str, set[str]] = {"entities": set(), "accounts": set(), "securities": set()}
    kind: str
    for tx in block.transactions:
        definition = defines(tx)
        if definition is not None:
            defined[_PLURAL[definition[0]]].add(definition[1])
        for kind, ids in references(tx).items():
            wanted[kind].update(ids)
    scope = {"entities": "", "accounts": chain.id, "securities": ""}
    known = _KNOWN.ids
    missing = {kind: {i for i in ids - defined[kind] if (kind, scope[kind], i) not in known}
               for kind, ids in wanted.items()}
    # Rows written earlier in this transaction are all in `defined`: what the query finds is committed.
    found = bulk.existing_many([
        (Entity, "id", sorted(missing["entities"]), {}),
        (Account, "account", sorted(missing["accounts"]), {"chain_id": chain.id}),
        (Security, "code", sorted(missing["securities"]), {}),
    ])
    for kind, ids in zip(("entities", "accounts", "securities"), found, strict=True):
        missing[kind] -= ids
        _KNOWN.add((kind, scope[kind], i) for i in ids)
    return {kind: sorted(ids) for kind, ids in missing.items() if ids}


def _write_index(chain_id: str, stored: Block, block: schemas.Block, bodies: Sequence[str]) -> None:
    rows = index_rows(chain_id=chain_id, block_id=stored.pk, height=stored.height,
                      timestamp=block.header.timestamp, transactions=block.transactions, bodies=bodies)
    for table, model in _APPEND_MODELS.items():
        bulk.insert_rows(model, TABLES[table], rows.append.get(table, []))
    for table, (model, conflict, newer_than) in _LATEST_MODELS.items():
        latest = rows.latest.get(table)
        if latest:
            bulk.upsert_rows(model, TABLES[table], list(latest.values()), conflict=conflict,
                             newer_than=newer_than)
    bulk.upsert_rows(Position, TABLES["position"], position_rows(chain_id, rows.position_deltas),
                     conflict=("chain_id", "account", "security"), additive=("quantity",))


def rejection_record(context: _Context, error: DomainError) -> RejectedSubmission:
    """Store why a submission was refused (its own transaction) and announce it on commit."""
    consensus_failure = False
    if error.code == "fork" and context.competing is not None:
        consensus_failure = _competing_has_quorum(context.chain_id, context.competing)
    with transaction.atomic():
        rejection = RejectedSubmission.objects.create(
            chain_id_text=context.chain_id[:64],
            token_prefix=context.token.prefix if context.token else (context.presented_key or "")[:8],
            received_at=timezone.now(),
            status=error.http_status,
            code=error.code,
            detail=text(error.message[:2000]),
            # jsonb cannot hold U+0000 either; echoed input may carry it.
            extra=json.loads(json.dumps({
                **{k: v for k, v in error.extra.items() if k != "errors"},
                "errors": error.extra.get("errors", [])[:20],
                "consensus_failure": consensus_failure,
            }).replace("\\u0000", "\\ufffd")),
            height=context.height,
            block_hash=context.block_hash,
            body_sm3=sm3_hex(context.body) if context.body else "",
            body_size=len(context.body),
            remote_addr=context.remote_addr[:64],
        )
        if consensus_failure:
            Chain.objects.filter(id=context.chain_id).update(status=Chain.Status.FORKED)
        transaction.on_commit(lambda: block_rejected.send(
            sender=RejectedSubmission, rejection=rejection, consensus_failure=consensus_failure,
        ))
    log.info("rejected %s submission: %s %s", context.chain_id, error.code, error.message)
    return rejection


def _competing_has_quorum(chain_id: str, block: schemas.Block) -> bool:
    node_sets = _node_sets(chain_id)
    if not node_sets:
        return False
    node_set = _node_set_for(node_sets, block.header.height)
    return has_valid_quorum(block, node_set.keys, node_set.quorum)
