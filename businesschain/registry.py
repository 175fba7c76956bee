"""Services that register business chains, issue their API keys and version their node sets."""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache

from django.db import transaction
from django.utils import timezone

from businesschain.errors import Conflict, InvalidInput, NotFound
from businesschain.models import Chain, ChainToken, Node, NodeSet
from businesschain.protocol.identifiers import is_chain_id
from gm import sm2
from gm.sm3 import sm3_hex


@dataclass(frozen=True)
class IssuedToken:
    chain_id: str
    key: str  # shown once; only its SM3 digest is stored


def token_digest(key: str) -> str:
    return sm3_hex(key.encode("utf-8"))


def normalise_public_key(text: str) -> str:
    """Any accepted registration form (hex point, PEM key, PEM certificate) as 04‖X‖Y hex."""
    try:
        return sm2.load_public_key(text.strip()).to_hex()
    except (ValueError, TypeError) as error:
        raise InvalidInput(f"not an SM2 public key: {error}", code="invalid_public_key") from error


@lru_cache(maxsize=4096)
def parsed_public_key(hex_key: str) -> sm2.SM2PublicKey:
    """Parsed keys are derived data; caching them per process only saves time."""
    return sm2.SM2PublicKey.from_hex(hex_key)


def _issue_token(chain: Chain) -> IssuedToken:
    key = secrets.token_urlsafe(32)
    ChainToken.objects.create(chain=chain, key_digest=token_digest(key), prefix=key[:8])
    return IssuedToken(chain_id=chain.id, key=key)


def _check_node_set(nodes: Mapping[str, str], quorum: int) -> dict[str, str]:
    if not nodes:
        raise InvalidInput("a chain needs at least one consensus node", code="invalid_nodes")
    if not 1 <= quorum <= len(nodes):
        raise InvalidInput(f"quorum must be between 1 and {len(nodes)}", code="invalid_quorum")
    checked = {}
    for node_id, key in nodes.items():
        if not node_id or len(node_id) > 64:
            raise InvalidInput(f"bad node id {node_id!r}", code="invalid_nodes")
        checked[node_id] = normalise_public_key(key)
    return checked


@transaction.atomic
def chain_register(*, chain_id: str, name: str, nodes: Mapping[str, str], quorum: int) -> IssuedToken:
    """Register a chain with its first node set and issue its API key."""
    if not is_chain_id(chain_id):
        raise InvalidInput(f"chain id {chain_id!r} does not match ^[a-z][a-z0-9-]{{1,31}}$",
                           code="invalid_chain_id")
    if Chain.objects.filter(id=chain_id).exists():
        raise Conflict(f"chain {chain_id!r} is already registered", code="chain_exists")
    checked = _check_node_set(nodes, quorum)
    chain = Chain.objects.create(id=chain_id, name=name)
    node_set = NodeSet.objects.create(chain=chain, version=1, quorum=quorum, valid_from_height=0)
    Node.objects.bulk_create(Node(node_set=node_set, node_id=n, public_key=k) for n, k in checked.items())
    return _issue_token(chain)


@transaction.atomic
def chain_token_rotate(*, chain_id: str) -> IssuedToken:
    """Revoke every key of the chain and issue a new one."""
    chain = _locked_chain(chain_id)
    ChainToken.objects.filter(chain=chain, revoked_at__isnull=True).update(revoked_at=timezone.now())
    return _issue_token(chain)


@transaction.atomic
def chain_nodes_change(
    *, chain_id: str, add: Mapping[str, str] | None = None, remove: Iterable[str] = (),
    quorum: int | None = None,
) -> NodeSet:
    """A new node-set version, valid from the chain's next height; old blocks keep theirs."""
    chain = _locked_chain(chain_id)
    current = current_node_set(chain)
    nodes = {n.node_id: n.public_key for n in current.nodes.all()}
    for node_id in remove:
        if node_id not in nodes:
            raise InvalidInput(f"node {node_id!r} is not in the current node set", code="invalid_nodes")
        del nodes[node_id]
    nodes.update(add or {})
    checked = _check_node_set(nodes, quorum if quorum is not None else min(current.quorum, len(nodes)))
    node_set = NodeSet.objects.create(
        chain=chain, version=current.version + 1,
        quorum=quorum if quorum is not None else min(current.quorum, len(checked)),
        valid_from_height=chain.next_height,
    )
    Node.objects.bulk_create(Node(node_set=node_set, node_id=n, public_key=k) for n, k in checked.items())
    return node_set


@transaction.atomic
def chain_status_set(*, chain_id: str, status: str) -> bool:
    """Set a chain's status (supervision marks silent chains `stalled`); True if it changed.
    Announcing the change is the caller's business."""
    if status not in Chain.Status.values:
        raise InvalidInput(f"unknown chain status {status!r}", code="invalid_status")
    chain = _locked_chain(chain_id)
    if chain.status == status:
        return False
    chain.status = status
    chain.save(update_fields=["status"])
    return True


def current_node_set(chain: Chain) -> NodeSet:
    node_set = NodeSet.objects.filter(chain=chain).order_by("-version").first()
    if node_set is None:
        raise NotFound(f"chain {chain.id!r} has no node set", code="unknown_chain")
    return node_set


def _locked_chain(chain_id: str) -> Chain:
    chain = Chain.objects.select_for_update().filter(id=chain_id).first()
    if chain is None:
        raise NotFound(f"chain {chain_id!r} is not registered", code="unknown_chain")
    return chain


def token_lookup(key: str) -> ChainToken | None:
    # Unordered and unjoined: this runs on every chain request.
    tokens = ChainToken.objects.filter(key_digest=token_digest(key), revoked_at__isnull=True).order_by()
    return next(iter(tokens[:1]), None)
