"""The supervision chain (监管链), its audits, and the alerts that analytics raise."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q


class SupervisorKey(models.Model):
    """An SM2 key the supervisor has signed with. Retired keys stay so old blocks verify."""

    fingerprint = models.CharField(max_length=64, unique=True)  # SM3 of the 04‖X‖Y bytes, hex
    public_key = models.CharField(max_length=130)
    certificate_pem = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    retired_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.fingerprint[:16]


class SupervisionHead(models.Model):
    """The single row sealers lock (SELECT … FOR UPDATE): whoever holds it seals the next block."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    height = models.BigIntegerField(default=-1)
    block_hash = models.CharField(max_length=64, default="0" * 64)
    sealed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.CheckConstraint(condition=Q(id=1), name="supervision_head_singleton")]

    def __str__(self) -> str:
        return f"supervision head {self.height}"


class SupervisionBlock(models.Model):
    """A sealed supervision block: header fields, SM3(CJ(header)) and the supervisor's signature."""

    height = models.BigIntegerField(unique=True)
    prev_hash = models.CharField(max_length=64)
    timestamp = models.DateTimeField()
    anchor_count = models.PositiveIntegerField()
    anchor_root = models.CharField(max_length=64)
    block_hash = models.CharField(max_length=64, unique=True)
    signature = models.CharField(max_length=200)
    key = models.ForeignKey(SupervisorKey, on_delete=models.PROTECT, related_name="blocks")
    # Roots of consecutive CHUNK_LEAVES-leaf runs of the anchor tree, hex-concatenated: derived at
    # seal time so a receipt rehashes one run, not the whole tree. Not part of the signed header.
    chunk_roots = models.TextField(blank=True, default="")
    sealed_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["height"]

    def __str__(self) -> str:
        return f"supervision #{self.height}"


class Anchor(models.Model):
    """One accepted business block waiting for, or included in, a supervision block.
    `leaf_hash` is SM3(0x00 ‖ CJ({block_hash, chain, height})), stored so proofs need no rehash."""

    chain_id = models.CharField(max_length=32)
    height = models.BigIntegerField()
    block_hash = models.CharField(max_length=64)
    leaf_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)
    supervision_block = models.ForeignKey(
        SupervisionBlock, on_delete=models.PROTECT, null=True, blank=True, related_name="anchors"
    )
    leaf_index = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["chain_id", "height"], name="anchor_block_unique"),
            models.UniqueConstraint(
                fields=["supervision_block", "leaf_index"], name="anchor_leaf_position_unique"
            ),
        ]
        indexes = [
            models.Index(fields=["block_hash"], name="anchor_block_hash_idx"),
            models.Index(
                fields=["id"], condition=Q(supervision_block__isnull=True), name="anchor_pending_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"anchor {self.chain_id}#{self.height}"


class AuditRun(models.Model):
    """The result of one `audit_chains` run, shown on the dashboard. `mismatch_count` is how many
    mismatches the run found; `mismatches` keeps the first ones only (`audit.MAX_REPORTED`)."""

    class Trigger(models.TextChoices):
        MANUAL = "manual", "manual"
        SCHEDULED = "scheduled", "scheduled"

    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    trigger = models.CharField(max_length=16, choices=Trigger.choices, default=Trigger.MANUAL)
    scope = models.JSONField(default=dict)
    ok = models.BooleanField(null=True)
    blocks_checked = models.PositiveBigIntegerField(default=0)
    transactions_checked = models.PositiveBigIntegerField(default=0)
    anchors_checked = models.PositiveBigIntegerField(default=0)
    supervision_blocks_checked = models.PositiveBigIntegerField(default=0)
    mismatch_count = models.PositiveBigIntegerField(default=0)
    mismatches = models.JSONField(default=list)

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"audit {self.started_at:%Y-%m-%d %H:%M} ok={self.ok}"


class Alert(models.Model):
    """A supervisory finding (supervision API §1 alert rules). One row per fingerprint: a repeat
    updates `last_seen` and the evidence instead of adding a row."""

    class Severity(models.TextChoices):
        CRITICAL = "critical", "critical"
        HIGH = "high", "high"
        MEDIUM = "medium", "medium"
        LOW = "low", "low"

    class Status(models.TextChoices):
        OPEN = "open", "open"
        ACKNOWLEDGED = "acknowledged", "acknowledged"
        ESCALATED = "escalated", "escalated"
        CLOSED = "closed", "closed"

    code = models.CharField(max_length=32)
    severity = models.CharField(max_length=16, choices=Severity.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    fingerprint = models.CharField(max_length=255, unique=True)
    title_zh = models.CharField(max_length=300)
    title_en = models.CharField(max_length=300)
    detail_zh = models.TextField()
    detail_en = models.TextField()
    chain_id = models.CharField(max_length=32, blank=True, default="")
    block_height = models.BigIntegerField(null=True, blank=True)
    tx_ids = models.JSONField(default=list)
    entities = models.JSONField(default=list)
    evidence = models.JSONField(default=dict)
    occurrences = models.PositiveIntegerField(default=1)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField()
    last_seen = models.DateTimeField()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["code", "-created_at"], name="alert_code_idx"),
            models.Index(fields=["status", "-created_at"], name="alert_status_idx"),
            models.Index(fields=["chain_id", "-created_at"], name="alert_chain_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.code} #{self.pk}"


class AlertEntity(models.Model):
    """Which entities an alert names, for the `entity=` filter without scanning JSON."""

    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="entity_links")
    entity_id = models.CharField(max_length=64, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["alert", "entity_id"], name="alert_entity_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.alert_id}:{self.entity_id}"


class AlertHistory(models.Model):
    """One change of an alert: who, when, which field, from what to what, and a note."""

    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="history")
    at = models.DateTimeField()
    by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    field = models.CharField(max_length=32)
    from_value = models.TextField(blank=True, default="")
    to_value = models.TextField(blank=True, default="")
    note = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["at", "id"]
        verbose_name_plural = "alert history"

    def __str__(self) -> str:
        return f"{self.alert_id} {self.field} at {self.at}"


# --- Analytics state (penetrating supervision, supervision API §1) ------------------------------


class AnalyticsState(models.Model):
    """The single row analytics keep their bookkeeping in, and lock to serialise structure
    refreshes. `structure_version` counts refreshes; `groups_token` names the control-group
    computation `ControlGroupMember` was last written from (unchanged token, unchanged table)."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    structure_version = models.BigIntegerField(default=0)
    structure_built_at = models.DateTimeField(null=True, blank=True)
    groups_token = models.CharField(max_length=32, blank=True, default="")
    recomputed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.CheckConstraint(condition=Q(id=1), name="analytics_state_singleton")]

    def __str__(self) -> str:
        return f"analytics structure v{self.structure_version}"


class ControlGroupMember(models.Model):
    """Materialised control groups: one row per entity that belongs to a control group (entities
    sharing an ultimate controller, with that controller, and the parties of active concert-party
    agreements), and the entity's own ultimate controller (blank when none). Rewritten from the
    ownership graph whenever the structure changes."""

    entity_id = models.CharField(max_length=64, unique=True)
    group_key = models.CharField(max_length=64, db_index=True)
    controller_id = models.CharField(max_length=64, blank=True, default="")

    class Meta:
        ordering = ["group_key", "entity_id"]
        permissions = [
            ("view_person_identifiers", "Can view natural persons' identity card numbers"),
        ]

    def __str__(self) -> str:
        return f"{self.entity_id} in {self.group_key}"


class ThresholdCrossing(models.Model):
    """A control group's holding of a listed issuer (all its accounts on all chains, all the issuer's
    securities) crossed one multiple of 5 % of its shares in one block (`step` × 5 %, `direction`
    up or down). It waits (pending) for a `shareholding_change` disclosure by a group member; one
    filed within 3 days resolves it (disclosed), none by `due_at` turns it into a
    `threshold_crossing` alert (alerted)."""

    class Status(models.TextChoices):
        PENDING = "pending", "pending"
        DISCLOSED = "disclosed", "disclosed"
        ALERTED = "alerted", "alerted"

    class Direction(models.TextChoices):
        UP = "up", "up"
        DOWN = "down", "down"

    chain_id = models.CharField(max_length=32)
    height = models.BigIntegerField()
    group_key = models.CharField(max_length=64)
    issuer_id = models.CharField(max_length=64)
    step = models.PositiveSmallIntegerField()
    direction = models.CharField(max_length=4, choices=Direction.choices)
    members = models.JSONField(default=list)
    tx_ids = models.JSONField(default=list)
    before_quantity = models.BigIntegerField()
    after_quantity = models.BigIntegerField()
    total_shares = models.BigIntegerField()
    crossed_at = models.DateTimeField()
    due_at = models.DateTimeField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    disclosure_tx_id = models.CharField(max_length=64, blank=True, default="")
    resolved_at = models.DateTimeField(null=True, blank=True)
    alert = models.ForeignKey(Alert, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")

    class Meta:
        ordering = ["crossed_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["chain_id", "height", "group_key", "issuer_id", "step", "direction"],
                name="crossing_block_step_unique",
            ),
        ]
        indexes = [
            models.Index(fields=["due_at"], condition=Q(status="pending"), name="crossing_pending_idx"),
            models.Index(fields=["issuer_id", "status"], name="crossing_issuer_idx"),
        ]

    def __str__(self) -> str:
        return (f"{self.group_key} × {self.issuer_id} {self.direction} {self.step * 5}% "
                f"({self.status})")
