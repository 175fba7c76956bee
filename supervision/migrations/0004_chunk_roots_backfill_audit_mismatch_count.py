"""Two changes that let the code drop fallbacks:

- `SupervisionBlock.chunk_roots` for blocks sealed before 0003 stored them, computed as the sealer
  computes them (`merkle.chunk_roots` over the block's leaf hashes in leaf order, hex-concatenated),
  so a receipt never needs the whole anchor tree. Only blocks whose stored leaves reproduce the
  signed `anchor_root` get them: for any other block the sealer's value cannot be known, and the
  audit names the block (`anchor_root`).
- `AuditRun.mismatch_count`: how many mismatches a run found (the `mismatches` list is capped).
  Earlier runs get the length of their list, which is the true count unless the list was capped.
"""

from __future__ import annotations

from typing import Any

from django.db import migrations, models

from businesschain.protocol import merkle


def _leaf_hashes(hexes: list[str]) -> list[bytes] | None:
    try:
        leaves = [bytes.fromhex(h) for h in hexes]
    except ValueError:
        return None
    return leaves if all(len(leaf) == merkle.HASH_SIZE for leaf in leaves) else None


def backfill_chunk_roots(apps: Any, schema_editor: Any) -> None:
    """Fill in `chunk_roots` of every supervision block that lacks them (one block at a time:
    a block holds at most `SEAL_MAX_PENDING` anchors)."""
    SupervisionBlock = apps.get_model("supervision", "SupervisionBlock")
    Anchor = apps.get_model("supervision", "Anchor")
    db = schema_editor.connection.alias
    missing = list(SupervisionBlock.objects.using(db).filter(chunk_roots="", anchor_count__gt=0)
                   .order_by("pk").values_list("pk", "anchor_root"))
    for block_id, anchor_root in missing:
        leaves = _leaf_hashes(list(
            Anchor.objects.using(db).filter(supervision_block_id=block_id)
            .order_by("leaf_index").values_list("leaf_hash", flat=True)
        ))
        if not leaves or merkle.root_from_leaf_hashes(leaves).hex() != anchor_root:
            continue
        roots = "".join(r.hex() for r in merkle.chunk_roots(leaves))
        SupervisionBlock.objects.using(db).filter(pk=block_id).update(chunk_roots=roots)


def backfill_mismatch_count(apps: Any, schema_editor: Any) -> None:
    """Failed runs recorded before the count was stored: the length of their (capped) list."""
    AuditRun = apps.get_model("supervision", "AuditRun")
    db = schema_editor.connection.alias
    for run_id, mismatches in list(AuditRun.objects.using(db).filter(ok=False)
                                   .values_list("pk", "mismatches")):
        count = len(mismatches) if isinstance(mismatches, list) else 0
        AuditRun.objects.using(db).filter(pk=run_id).update(mismatch_count=count)


class Migration(migrations.Migration):

    dependencies = [
        ("supervision", "0003_supervision_block_chunk_roots"),
    ]

    operations = [
        migrations.AddField(
            model_name="auditrun",
            name="mismatch_count",
            field=models.PositiveBigIntegerField(default=0),
        ),
        migrations.RunPython(backfill_chunk_roots, migrations.RunPython.noop, elidable=True),
        migrations.RunPython(backfill_mismatch_count, migrations.RunPython.noop, elidable=True),
    ]
