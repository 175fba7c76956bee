"""Read-mostly admin for chains; blocks and transactions are append-only evidence."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from businesschain import models


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class NodeInline(admin.TabularInline):
    model = models.Node
    extra = 0
    can_delete = False
    readonly_fields = ("node_id", "public_key")


@admin.register(models.Chain)
class ChainAdmin(admin.ModelAdmin):
    list_display = ("id", "name", "status", "head_height", "last_block_at")
    readonly_fields = ("head_height", "head_hash", "head_timestamp", "last_block_at", "created_at")
    fields = ("id", "name", "status", "stall_interval", *readonly_fields)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(models.NodeSet)
class NodeSetAdmin(ReadOnlyAdmin):
    list_display = ("chain", "version", "quorum", "valid_from_height", "created_at")
    inlines = [NodeInline]


@admin.register(models.ChainToken)
class ChainTokenAdmin(ReadOnlyAdmin):
    list_display = ("chain", "prefix", "created_at", "revoked_at")


@admin.register(models.Block)
class BlockAdmin(ReadOnlyAdmin):
    list_display = ("chain", "height", "block_hash", "tx_count", "timestamp", "received_at")
    list_filter = ("chain",)
    search_fields = ("block_hash",)


@admin.register(models.Transaction)
class TransactionAdmin(ReadOnlyAdmin):
    list_display = ("tx_id", "chain", "height", "index", "type")
    list_filter = ("chain", "type")
    search_fields = ("tx_id", "nonce")


@admin.register(models.RejectedSubmission)
class RejectedSubmissionAdmin(ReadOnlyAdmin):
    list_display = ("received_at", "chain_id_text", "code", "status", "height", "token_prefix")
    list_filter = ("code", "chain_id_text")


for model in (models.Entity, models.Security, models.Account, models.Holding, models.Role,
              models.ConcertParty, models.Trade, models.Transfer, models.Position,
              models.Disclosure, models.EvidenceRecord):
    admin.site.register(model, ReadOnlyAdmin)
