"""Migration supervision 0004 run for real (MigrationExecutor): chunk roots filled in for blocks
sealed before 0003 stored them, and the mismatch count of earlier audit runs."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from supervision.anchoring import anchors_create, supervision_block_seal
from supervision.models import Anchor, AuditRun, SupervisionBlock
from tests.supervision.chain.verifier import verify_receipt

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("supervision", "0003_supervision_block_chunk_roots")]
AFTER = [("supervision", "0004_chunk_roots_backfill_audit_mismatch_count")]


def migrate(targets: list[tuple[str, str]]) -> MigrationExecutor:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor


@pytest.fixture
def at_0003(transactional_db):
    """The schema as of 0003 during the test; every migration applied again afterwards."""
    migrate(BEFORE)
    yield MigrationExecutor(connection).loader.project_state(BEFORE).apps
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())


def seal(chain_id: str, count: int) -> list[str]:
    hashes = [f"{chain_id}{i:062x}" for i in range(count)]
    anchors_create(chain_id=chain_id, heights=list(range(count)), block_hashes=hashes)
    supervision_block_seal()
    return hashes


def test_backfill_gives_old_blocks_the_chunk_roots_the_sealer_computes(at_0003, regulator_client):
    large, small, tampered = seal("aa", 600), seal("bb", 3), seal("cc", 300)
    sealed = dict(SupervisionBlock.objects.values_list("height", "chunk_roots"))
    old = at_0003.get_model("supervision", "SupervisionBlock")
    old.objects.update(chunk_roots="")  # as sealed before 0003
    victim = Anchor.objects.get(chain_id="cc", height=5)
    Anchor.objects.filter(pk=victim.pk).update(leaf_hash="00" * 32)  # leaves no longer match the root

    migrate(AFTER)

    after = dict(SupervisionBlock.objects.values_list("height", "chunk_roots"))
    assert after[0] == sealed[0] and len(after[0]) == 3 * 64  # 600 leaves: three chunks
    assert after[1] == sealed[1] and len(after[1]) == 64
    assert after[2] == ""  # the sealer's value cannot be known from altered leaves
    for chain_id, hashes, height in (("aa", large, 599), ("aa", large, 300), ("bb", small, 2)):
        data = regulator_client.get(f"/api/v1/receipts/{hashes[height]}").json()
        verify_receipt(data, chain=chain_id, height=height, block_hash=hashes[height])
    refused = regulator_client.get(f"/api/v1/receipts/{tampered[10]}")
    assert refused.status_code == 500 and refused.json()["code"] == "chunk_roots_missing"


def test_earlier_failed_audit_runs_get_the_length_of_their_list_as_count(at_0003):
    from django.utils import timezone

    old = at_0003.get_model("supervision", "AuditRun")
    failed = old.objects.create(started_at=timezone.now(), ok=False,
                                mismatches=[{"what": "tx_id"}, {"what": "tx_root"}, {"what": "quorum"}])
    clean = old.objects.create(started_at=timezone.now(), ok=True, mismatches=[])
    running = old.objects.create(started_at=timezone.now())

    migrate(AFTER)

    counts = dict(AuditRun.objects.values_list("pk", "mismatch_count"))
    assert counts == {failed.pk: 3, clean.pk: 0, running.pk: 0}
