"""What a transaction refers to and what it defines (ECP/1 §3).

References to entities, accounts or securities the supervisor has not seen are allowed but listed
as unresolved in the block's record: `references(tx)` gives the ids to look up, by kind. The id a
transaction itself defines (`defines(tx)`) is not among its references.
"""

from __future__ import annotations

from typing import Final, Literal

from .schemas import Transaction

ReferenceKind = Literal["entities", "accounts", "securities"]
DefinedKind = Literal["entity", "security", "account"]
REFERENCE_KINDS: Final[tuple[ReferenceKind, ...]] = ("entities", "accounts", "securities")

# type → (entity keys, account keys, security keys) referred to by the body.
_REFERENCE_KEYS: Final[dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]]] = {
    "entity_register": ((), (), ()),
    "security_listing": (("issuer",), (), ()),
    "account_open": (("holder", "broker"), (), ()),
    "shareholding": (("issuer", "holder"), (), ()),
    "role": (("org", "person"), (), ()),
    "concert_party": (("issuer",), (), ()),
    "trade": ((), ("buyer", "seller"), ("security",)),
    "transfer": ((), ("from", "to"), ("security",)),
    "disclosure": (("issuer", "holder"), (), ()),
    "evidence": ((), (), ()),
}
_DEFINES: Final[dict[str, tuple[DefinedKind, str]]] = {
    "entity_register": ("entity", "id"),
    "security_listing": ("security", "security"),
    "account_open": ("account", "account"),
}


def references(tx: Transaction) -> dict[ReferenceKind, set[str]]:
    """{"entities": {...}, "accounts": {...}, "securities": {...}} the transaction refers to."""
    entity_keys, account_keys, security_keys = _REFERENCE_KEYS[tx.type]
    body = tx.body
    entities = {body[key] for key in entity_keys}
    if tx.type == "concert_party":
        entities.update(body["parties"])
    return {
        "entities": entities,
        "accounts": {body[key] for key in account_keys},
        "securities": {body[key] for key in security_keys},
    }


def defines(tx: Transaction) -> tuple[DefinedKind, str] | None:
    """("entity" | "security" | "account", id) for a registering transaction, else None."""
    entry = _DEFINES.get(tx.type)
    if entry is None:
        return None
    kind, key = entry
    return kind, tx.body[key]
