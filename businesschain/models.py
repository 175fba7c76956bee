"""Business chains, their blocks and transactions (append-only), and the typed index built from them.

Index tables reference entities, accounts and securities by their identifiers, not by foreign keys:
ECP/1 §3 lets a chain refer to something before (or without) registering it.
"""

from __future__ import annotations

from datetime import timedelta

from django.db import models
from django.db.models import Q


class Chain(models.Model):
    """A registered business chain (业务链) and its accepted head."""

    class Status(models.TextChoices):
        ACTIVE = "active", "active"
        STALLED = "stalled", "stalled"
        FORKED = "forked", "forked"
        SUSPENDED = "suspended", "suspended"

    id = models.CharField(primary_key=True, max_length=32)
    name = models.CharField(max_length=100)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    stall_interval = models.DurationField(default=timedelta(minutes=10))
    head_height = models.BigIntegerField(default=-1)
    head_hash = models.CharField(max_length=64, blank=True, default="")
    head_timestamp = models.DateTimeField(null=True, blank=True)
    last_block_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.id} ({self.name})"

    @property
    def next_height(self) -> int:
        return self.head_height + 1


class NodeSet(models.Model):
    """One version of a chain's consensus nodes and quorum; blocks keep the version they were
    verified against, so changing the node set never invalidates history."""

    chain = models.ForeignKey(Chain, on_delete=models.PROTECT, related_name="node_sets")
    version = models.PositiveIntegerField()
    quorum = models.PositiveSmallIntegerField()
    valid_from_height = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["chain", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["chain", "version"], name="nodeset_chain_version_unique"),
            models.CheckConstraint(condition=Q(quorum__gte=1), name="nodeset_quorum_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.chain_id} v{self.version} (quorum {self.quorum})"


class Node(models.Model):
    """A consensus node of one node-set version, with its SM2 public key (04‖X‖Y hex)."""

    node_set = models.ForeignKey(NodeSet, on_delete=models.CASCADE, related_name="nodes")
    node_id = models.CharField(max_length=64)
    public_key = models.CharField(max_length=130)

    class Meta:
        ordering = ["node_set", "node_id"]
        constraints = [
            models.UniqueConstraint(fields=["node_set", "node_id"], name="node_unique_in_set"),
        ]

    def __str__(self) -> str:
        return self.node_id


class ChainToken(models.Model):
    """An API key bound to one chain. Only the SM3 digest of the key is stored."""

    chain = models.ForeignKey(Chain, on_delete=models.CASCADE, related_name="tokens")
    key_digest = models.CharField(max_length=64, unique=True)
    prefix = models.CharField(max_length=8)
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["chain", "-created_at"]

    def __str__(self) -> str:
        return f"{self.chain_id}:{self.prefix}…"


class Block(models.Model):
    """An accepted business block. Append-only; (chain, height) and (chain, block_hash) unique."""

    chain = models.ForeignKey(Chain, on_delete=models.PROTECT, related_name="blocks")
    height = models.BigIntegerField()
    block_hash = models.CharField(max_length=64)
    prev_hash = models.CharField(max_length=64)
    timestamp = models.DateTimeField()
    tx_count = models.PositiveIntegerField()
    tx_root = models.CharField(max_length=64)
    signatures = models.JSONField(default=list)
    node_set = models.ForeignKey(NodeSet, on_delete=models.PROTECT, related_name="blocks")
    verification = models.JSONField(default=dict)
    received_at = models.DateTimeField()

    class Meta:
        ordering = ["chain", "height"]
        constraints = [
            models.UniqueConstraint(fields=["chain", "height"], name="block_chain_height_unique"),
            models.UniqueConstraint(fields=["chain", "block_hash"], name="block_chain_hash_unique"),
        ]
        indexes = [models.Index(fields=["block_hash"], name="block_hash_idx")]

    def __str__(self) -> str:
        return f"{self.chain_id}#{self.height}"


class Transaction(models.Model):
    """An accepted transaction. `body` is its canonical JSON text (ECP/1 CJ), byte for byte what
    `tx_id` was computed over, so the audit can recompute it from the row alone."""

    # Every index and FK trigger costs on each COPY: (chain, nonce) and (block, index) cover these
    # two, and only ingestion writes them, in the transaction that creates the block.
    chain = models.ForeignKey(Chain, on_delete=models.PROTECT, related_name="+", db_index=False,
                              db_constraint=False)
    block = models.ForeignKey(Block, on_delete=models.PROTECT, related_name="transactions",
                              db_index=False, db_constraint=False)
    height = models.BigIntegerField()
    index = models.PositiveIntegerField()
    tx_id = models.CharField(max_length=64)
    type = models.CharField(max_length=32)
    nonce = models.CharField(max_length=64)
    body = models.TextField()

    class Meta:
        ordering = ["chain", "height", "index"]
        constraints = [
            models.UniqueConstraint(fields=["chain", "nonce"], name="tx_chain_nonce_unique"),
            models.UniqueConstraint(fields=["block", "index"], name="tx_block_index_unique"),
        ]
        indexes = [models.Index(fields=["tx_id"], name="tx_id_idx")]

    def __str__(self) -> str:
        return self.tx_id


class RejectedSubmission(models.Model):
    """A refused `POST …/blocks`: what, when, which code, from which token. Kept for regulators."""

    chain_id_text = models.CharField(max_length=64, blank=True, default="")
    token_prefix = models.CharField(max_length=8, blank=True, default="")
    received_at = models.DateTimeField()
    status = models.PositiveSmallIntegerField()
    code = models.CharField(max_length=32)
    detail = models.TextField()
    extra = models.JSONField(default=dict)
    height = models.BigIntegerField(null=True, blank=True)
    block_hash = models.CharField(max_length=64, blank=True, default="")
    body_sm3 = models.CharField(max_length=64, blank=True, default="")
    body_size = models.PositiveIntegerField(default=0)
    remote_addr = models.CharField(max_length=64, blank=True, default="")

    class Meta:
        ordering = ["-received_at"]
        indexes = [models.Index(fields=["chain_id_text", "-received_at"], name="rejection_chain_idx")]

    def __str__(self) -> str:
        return f"{self.chain_id_text} {self.code} at {self.received_at:%Y-%m-%d %H:%M:%S}"


# --- Typed index -----------------------------------------------------------------------------


class Entity(models.Model):
    """A legal or natural person as last registered on any chain (KYC)."""

    class Kind(models.TextChoices):
        ORG = "org", "org"
        PERSON = "person", "person"

    id = models.CharField(primary_key=True, max_length=64)
    kind = models.CharField(max_length=8, choices=Kind.choices)
    name = models.CharField(max_length=200)
    id_type = models.CharField(max_length=8)
    chain = models.ForeignKey(Chain, on_delete=models.PROTECT, related_name="+")
    tx_id = models.CharField(max_length=64)
    height = models.BigIntegerField()

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["name"], name="entity_name_idx")]

    def __str__(self) -> str:
        return f"{self.name} ({self.id})"


class EntityRegistration(models.Model):
    """Every `entity_register` transaction, per chain: which chains know an entity."""

    chain = models.ForeignKey(Chain, on_delete=models.PROTECT, related_name="+")
    entity_id = models.CharField(max_length=64)
    kind = models.CharField(max_length=8)
    name = models.CharField(max_length=200)
    tx_id = models.CharField(max_length=64)
    height = models.BigIntegerField()

    class Meta:
        ordering = ["chain", "height"]
        indexes = [models.Index(fields=["entity_id"], name="entityreg_entity_idx")]

    def __str__(self) -> str:
        return f"{self.chain_id}:{self.entity_id}"


class Security(models.Model):
    """A listed security and its issuer (latest listing wins)."""

    code = models.CharField(primary_key=True, max_length=6)
    issuer_id = models.CharField(max_length=64)
    name = models.CharField(max_length=200)
    total_shares = models.BigIntegerField()
    chain = models.ForeignKey(Chain, on_delete=models.PROTECT, related_name="+")
    tx_id = models.CharField(max_length=64)
    height = models.BigIntegerField()

    class Meta:
        ordering = ["code"]
        verbose_name_plural = "securities"
        indexes = [models.Index(fields=["issuer_id"], name="security_issuer_idx")]

    def __str__(self) -> str:
        return f"{self.code} {self.name}"


class Account(models.Model):
    """A securities account on one chain, its holder and broker."""

    chain = models.ForeignKey(Chain, on_delete=models.PROTECT, related_name="+", db_index=False)
    account = models.CharField(max_length=20)
    holder_id = models.CharField(max_length=64)
    broker_id = models.CharField(max_length=64)
    tx_id = models.CharField(max_length=64)
    height = models.BigIntegerField()

    class Meta:
        ordering = ["chain", "account"]
        constraints = [
            models.UniqueConstraint(fields=["chain", "account"], name="account_chain_unique"),
        ]
        indexes = [models.Index(fields=["holder_id"], name="account_holder_idx")]

    def __str__(self) -> str:
        return f"{self.chain_id}:{self.account}"


class HoldingSnapshot(models.Model):
    """Every `shareholding` registry snapshot as received (append-only)."""

    chain = models.ForeignKey(Chain, on_delete=models.PROTECT, related_name="+")
    height = models.BigIntegerField()
    tx_id = models.CharField(max_length=64)
    issuer_id = models.CharField(max_length=64)
    holder_id = models.CharField(max_length=64)
    shares = models.BigIntegerField()
    total_shares = models.BigIntegerField()
    as_of = models.DateTimeField()

    class Meta:
        ordering = ["as_of"]
        indexes = [models.Index(fields=["issuer_id", "holder_id"], name="snapshot_pair_idx")]

    def __str__(self) -> str:
        return f"{self.holder_id}→{self.issuer_id} {self.shares}/{self.total_shares}"


class Holding(models.Model):
    """The latest snapshot of each (holder, issuer) pair across all chains: later `as_of` wins.
    `shares` 0 ends the holding; the row stays so an older snapshot cannot revive it."""

    issuer_id = models.CharField(max_length=64)
    holder_id = models.CharField(max_length=64)
    shares = models.BigIntegerField()
    total_shares = models.BigIntegerField()
    as_of = models.DateTimeField()
    chain = models.ForeignKey(Chain, on_delete=models.PROTECT, related_name="+")
    tx_id = models.CharField(max_length=64)
    height = models.BigIntegerField()

    class Meta:
        ordering = ["issuer_id", "holder_id"]
        constraints = [
            models.UniqueConstraint(fields=["issuer_id", "holder_id"], name="holding_pair_unique"),
        ]
        indexes = [models.Index(fields=["holder_id"], name="holding_holder_idx")]

    def __str__(self) -> str:
        return f"{self.holder_id}→{self.issuer_id} {self.shares}/{self.total_shares}"


class Role(models.Model):
    """A person's current role in an organisation (the latest `role` transaction wins)."""

    class Kind(models.TextChoices):
        LEGAL_REP = "legal_rep", "legal_rep"
        DIRECTOR = "director", "director"
        SUPERVISOR = "supervisor", "supervisor"
        EXECUTIVE = "executive", "executive"
        ACTUAL_CONTROLLER = "actual_controller", "actual_controller"
        SPONSOR_REP = "sponsor_rep", "sponsor_rep"

    org_id = models.CharField(max_length=64)
    person_id = models.CharField(max_length=64)
    role = models.CharField(max_length=20, choices=Kind.choices)
    active = models.BooleanField()
    chain = models.ForeignKey(Chain, on_delete=models.PROTECT, related_name="+")
    tx_id = models.CharField(max_length=64)
    height = models.BigIntegerField()

    class Meta:
        ordering = ["org_id", "person_id", "role"]
        constraints = [
            models.UniqueConstraint(fields=["org_id", "person_id", "role"], name="role_unique"),
        ]
        indexes = [models.Index(fields=["person_id"], name="role_person_idx")]

    def __str__(self) -> str:
        return f"{self.person_id} {self.role} @ {self.org_id}"


class ConcertParty(models.Model):
    """A 一致行动 agreement about one issuer (latest state per issuer and party set)."""

    issuer_id = models.CharField(max_length=64)
    parties_key = models.CharField(max_length=1000)
    parties = models.JSONField()
    active = models.BooleanField()
    chain = models.ForeignKey(Chain, on_delete=models.PROTECT, related_name="+")
    tx_id = models.CharField(max_length=64)
    height = models.BigIntegerField()

    class Meta:
        ordering = ["issuer_id", "parties_key"]
        verbose_name_plural = "concert parties"
        constraints = [
            models.UniqueConstraint(fields=["issuer_id", "parties_key"], name="concert_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.issuer_id}: {self.parties_key}"


class Trade(models.Model):
    """An executed trade (append-only)."""

    chain = models.ForeignKey(Chain, on_delete=models.PROTECT, related_name="+", db_index=False,
                              db_constraint=False)
    height = models.BigIntegerField()
    tx_id = models.CharField(max_length=64)
    security = models.CharField(max_length=6)
    buyer = models.CharField(max_length=20)
    seller = models.CharField(max_length=20)
    quantity = models.BigIntegerField()
    price = models.DecimalField(max_digits=28, decimal_places=8)
    executed_at = models.DateTimeField()

    class Meta:
        ordering = ["executed_at"]
        indexes = [
            # Leading `security` still serves per-security scans; `seller` lets the trade-ring
            # search find earlier legs out of an account without reading the whole window.
            models.Index(fields=["security", "seller", "executed_at"], name="trade_security_seller_idx"),
            models.Index(fields=["chain", "height"], name="trade_block_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.security} {self.seller}→{self.buyer} {self.quantity}@{self.price}"


class Transfer(models.Model):
    """A non-trade transfer (非交易过户), timed by its block (append-only)."""

    chain = models.ForeignKey(Chain, on_delete=models.PROTECT, related_name="+", db_index=False,
                              db_constraint=False)
    height = models.BigIntegerField()
    tx_id = models.CharField(max_length=64)
    security = models.CharField(max_length=6)
    from_account = models.CharField(max_length=20)
    to_account = models.CharField(max_length=20)
    quantity = models.BigIntegerField()
    reason = models.CharField(max_length=16)
    at = models.DateTimeField()

    class Meta:
        ordering = ["at"]
        indexes = [
            models.Index(fields=["security", "from_account", "at"], name="transfer_security_from_idx"),
            models.Index(fields=["chain", "height"], name="transfer_block_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.security} {self.from_account}→{self.to_account} {self.quantity}"


class Position(models.Model):
    """Net quantity per account and security on one chain, from trades and transfers."""

    chain = models.ForeignKey(Chain, on_delete=models.PROTECT, related_name="+", db_index=False,
                              db_constraint=False)
    account = models.CharField(max_length=20)
    security = models.CharField(max_length=6)
    quantity = models.BigIntegerField(default=0)

    class Meta:
        ordering = ["chain", "account", "security"]
        constraints = [
            models.UniqueConstraint(fields=["chain", "account", "security"], name="position_unique"),
        ]
        indexes = [models.Index(fields=["security"], name="position_security_idx")]

    def __str__(self) -> str:
        return f"{self.chain_id}:{self.account} {self.security} {self.quantity}"


class Disclosure(models.Model):
    """A filed disclosure, identified by the SM3 of its document (append-only)."""

    chain = models.ForeignKey(Chain, on_delete=models.PROTECT, related_name="+")
    height = models.BigIntegerField()
    tx_id = models.CharField(max_length=64)
    issuer_id = models.CharField(max_length=64)
    holder_id = models.CharField(max_length=64)
    kind = models.CharField(max_length=24)
    doc_sm3 = models.CharField(max_length=64)
    as_of = models.DateTimeField()

    class Meta:
        ordering = ["as_of"]
        indexes = [
            models.Index(fields=["doc_sm3"], name="disclosure_doc_idx"),
            models.Index(fields=["issuer_id", "as_of"], name="disclosure_issuer_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.holder_id} on {self.issuer_id} ({self.kind})"


class EvidenceRecord(models.Model):
    """存证: the SM3 of a business record or file (append-only)."""

    chain = models.ForeignKey(Chain, on_delete=models.PROTECT, related_name="+")
    height = models.BigIntegerField()
    tx_id = models.CharField(max_length=64)
    business_type = models.TextField()
    reference = models.TextField()
    doc_sm3 = models.CharField(max_length=64)
    fields = models.JSONField(default=dict)

    class Meta:
        ordering = ["chain", "height"]
        indexes = [models.Index(fields=["doc_sm3"], name="evidence_doc_idx")]

    def __str__(self) -> str:
        return f"{self.business_type}:{self.reference}"
