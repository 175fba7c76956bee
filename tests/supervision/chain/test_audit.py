"""`audit_chains`: every SQL edit of a stored transaction, block, anchor or supervision block is
found and named by chain, height and transaction."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from businesschain.models import Block, Transaction
from businesschain.protocol.hashing import tx_canonical_json as tx_cj
from supervision.anchoring import anchors_sweep, supervision_block_seal
from supervision.audit import AuditScope, audit_chains
from supervision.models import Anchor, AuditRun, SupervisionBlock
from supervision.tasks import audit_chains_task
from tests.supervision.chain.conftest import push

pytestmark = pytest.mark.django_db


@pytest.fixture
def chains(client, sse, szse):
    """Two chains of 3 blocks × 3 transactions, two sealed supervision blocks, one pending anchor."""
    push(client, sse, blocks=2, txs=3)
    push(client, szse, blocks=2, txs=3)
    anchors_sweep()
    supervision_block_seal(max_anchors=2)
    supervision_block_seal(max_anchors=2)
    push(client, sse, blocks=1, txs=3)
    push(client, szse, blocks=1, txs=3)
    anchors_sweep()
    return sse, szse


def sql(statement: str, params: list) -> None:
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        assert cursor.rowcount == 1


def table(model) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def found(report, what: str) -> list:
    return [m for m in report.mismatches if m.what == what]


def test_untouched_chains_audit_clean_and_the_run_is_recorded(chains):
    report = audit_chains()
    assert report.ok, [str(m) for m in report.mismatches]
    assert (report.blocks, report.transactions, report.anchors, report.supervision_blocks) == (6, 18, 6, 2)
    run = AuditRun.objects.get(pk=report.run_id)
    assert run.ok is True and run.trigger == "manual" and run.transactions_checked == 18
    assert run.finished_at is not None and run.mismatches == []


def test_edited_transaction_body_is_named_by_chain_height_and_index(chains):
    tx = Transaction.objects.get(chain_id="szse", height=1, index=2)
    sql(f"UPDATE {table(Transaction)} SET body = %s WHERE id = %s",
        [tx.body.replace("contract", "contrakt"), tx.pk])
    report = audit_chains()
    assert [(m.what, m.chain, m.height, m.tx_index, m.tx_id) for m in report.mismatches] == [
        ("tx_id", "szse", 1, 2, tx.tx_id)]
    assert "chain szse height 1, tx 2" in str(report.mismatches[0])


def test_consistently_rehashed_transaction_is_caught_by_the_block_tx_root(chains):
    from supervision.audit import _sm3

    tx = Transaction.objects.get(chain_id="sse", height=0, index=0)
    body = tx.body.replace("contract", "forgery!")
    digest = _sm3()
    digest.update(tx_cj(tx.type, tx.nonce, body))
    sql(f"UPDATE {table(Transaction)} SET body = %s, tx_id = %s WHERE id = %s",
        [body, digest.hexdigest(), tx.pk])
    report = audit_chains()
    assert [(m.what, m.chain, m.height) for m in report.mismatches] == [("tx_root", "sse", 0)]


def test_deleted_transaction_is_caught_by_count_and_root(chains):
    tx = Transaction.objects.get(chain_id="sse", height=2, index=1)
    sql(f"DELETE FROM {table(Transaction)} WHERE id = %s", [tx.pk])
    report = audit_chains()
    assert {(m.what, m.chain, m.height) for m in report.mismatches} == {
        ("tx_count", "sse", 2), ("tx_root", "sse", 2), ("tx_index", "sse", 2)}


def test_edited_block_header_breaks_its_hash(chains):
    block = Block.objects.get(chain_id="sse", height=1)
    sql(f"UPDATE {table(Block)} SET tx_count = 4 WHERE id = %s", [block.pk])
    report = audit_chains()
    assert {(m.what, m.chain, m.height) for m in report.mismatches} == {
        ("block_hash", "sse", 1), ("tx_count", "sse", 1)}


def test_edited_block_hash_breaks_signatures_links_and_anchor(chains):
    block = Block.objects.get(chain_id="szse", height=0)
    sql(f"UPDATE {table(Block)} SET block_hash = %s WHERE id = %s", ["ab" * 32, block.pk])
    report = audit_chains()
    assert {(m.what, m.chain, m.height) for m in report.mismatches} >= {
        ("block_hash", "szse", 0), ("signature", "szse", 0), ("quorum", "szse", 0), ("prev_hash", "szse", 1),
        ("anchor_block_hash", "szse", 0)}


def test_forged_block_signature_is_caught(chains):
    block = Block.objects.get(chain_id="sse", height=2)
    signatures = block.signatures
    signatures[0]["sig"] = signatures[1]["sig"]
    Block.objects.filter(pk=block.pk).update(signatures=signatures)
    report = audit_chains()
    assert [(m.what, m.chain, m.height) for m in report.mismatches] == [
        ("signature", "sse", 2), ("quorum", "sse", 2)]  # 3 nodes signed, quorum 3
    assert "signatures[0]" in report.mismatches[0].detail


def test_edited_anchor_is_named_with_its_supervision_block_and_leaf(chains):
    anchor = Anchor.objects.get(chain_id="szse", height=1)
    sql(f"UPDATE {table(Anchor)} SET leaf_hash = %s WHERE id = %s", ["cd" * 32, anchor.pk])
    report = audit_chains()
    leaf = found(report, "anchor_leaf_hash")
    assert [(m.chain, m.height, m.supervision_height, m.leaf_index) for m in leaf] == [
        ("szse", 1, anchor.supervision_block.height, anchor.leaf_index)]
    assert [(m.chain, m.supervision_height) for m in found(report, "anchor_root")] == [
        (None, anchor.supervision_block.height)]
    assert report.mismatch_count == 2


def test_anchor_pointing_at_another_block_hash_is_caught(chains):
    anchor = Anchor.objects.get(chain_id="sse", height=2)  # still pending
    sql(f"UPDATE {table(Anchor)} SET block_hash = %s WHERE id = %s", ["ef" * 32, anchor.pk])
    report = audit_chains()
    assert {(m.what, m.chain, m.height) for m in report.mismatches} == {
        ("anchor_leaf_hash", "sse", 2), ("anchor_block_hash", "sse", 2)}


@pytest.mark.parametrize(("column", "value", "expected"), [
    ("anchor_root", "12" * 32, {"supervision_hash", "anchor_root"}),
    ("signature", None, {"supervision_signature"}),
    ("prev_hash", "34" * 32, {"supervision_hash", "supervision_prev_hash"}),
    ("anchor_count", 3, {"supervision_hash", "anchor_count"}),
])
def test_edited_supervision_block_is_named_by_height(chains, column, value, expected):
    block = SupervisionBlock.objects.get(height=1)
    if column == "signature":
        value = SupervisionBlock.objects.get(height=0).signature
    sql(f"UPDATE {table(SupervisionBlock)} SET {column} = %s WHERE id = %s", [value, block.pk])
    report = audit_chains()
    assert {m.what for m in report.mismatches} == expected
    assert {(m.chain, m.supervision_height) for m in report.mismatches} == {(None, 1)}


def test_command_exits_non_zero_naming_the_mismatch_and_draws_progress(chains):
    tx = Transaction.objects.get(chain_id="sse", height=1, index=1)
    sql(f"UPDATE {table(Transaction)} SET nonce = %s WHERE id = %s", ["forged-nonce", tx.pk])
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(CommandError) as raised:
        call_command("audit_chains", stdout=out, stderr=err)
    assert raised.value.returncode == 1
    assert "1 MISMATCH" in str(raised.value)
    assert f"MISMATCH chain sse height 1, tx 1 ({tx.tx_id}): tx_id" in out.getvalue()
    assert "transactions" in err.getvalue() and "#" in err.getvalue()
    run = AuditRun.objects.get()
    assert run.ok is False and run.mismatches[0]["chain"] == "sse" and run.mismatches[0]["tx_index"] == 1


def test_command_succeeds_on_clean_chains(chains):
    out = io.StringIO()
    call_command("audit_chains", "--no-progress", stdout=out)
    assert "OK: 6 blocks, 18 transactions" in out.getvalue()


def test_audit_of_one_chain_or_height_range_sees_only_that(chains):
    for chain, height in (("szse", 1), ("sse", 0)):
        tx = Transaction.objects.get(chain_id=chain, height=height, index=0)
        sql(f"UPDATE {table(Transaction)} SET body = %s WHERE id = %s", [tx.body + " ", tx.pk])
    sealed = SupervisionBlock.objects.get(height=0)
    sql(f"UPDATE {table(SupervisionBlock)} SET anchor_root = %s WHERE id = %s", ["00" * 32, sealed.pk])

    report = audit_chains(scope=AuditScope(chains=("sse",), supervision=False, height_from=1, height_to=2))
    assert report.ok and report.blocks == 2 and report.transactions == 6 and report.anchors == 2
    report = audit_chains(scope=AuditScope(chains=("sse",), supervision=False))
    assert [(m.what, m.chain, m.height) for m in report.mismatches] == [("tx_id", "sse", 0)]
    report = audit_chains(scope=AuditScope(height_from=1))
    assert {(m.what, m.chain, m.height) for m in report.mismatches} == {
        ("tx_id", "szse", 1), ("supervision_hash", None, None), ("anchor_root", None, None)}
    report = audit_chains(scope=AuditScope(business=False, supervision=True, height_from=1))
    assert report.ok and report.supervision_blocks == 1 and report.transactions == 0

    out = io.StringIO()
    with pytest.raises(CommandError):
        call_command("audit_chains", "--supervision", "--to", "0", "--no-progress", stdout=out)
    assert "supervision chain height 0: anchor_root" in out.getvalue()
    call_command("audit_chains", "--chain", "szse", "--to", "0", "--no-progress", stdout=io.StringIO())


def test_scheduled_audit_task_records_a_scheduled_run_and_skips_when_recent(chains):
    result = audit_chains_task.call(trigger="scheduled", interval_seconds=600)
    assert result["ok"] is True
    run = AuditRun.objects.get()
    assert run.trigger == "scheduled" and run.ok is True
    assert audit_chains_task.call(trigger="scheduled", interval_seconds=600) == {"skipped": True}


def test_deleted_last_block_is_caught_by_the_chain_head(client, sse):
    push(client, sse, blocks=2, txs=1)
    push(client, sse, blocks=1, txs=0)  # an empty block: no transaction row protects it
    Anchor.objects.all().delete()
    block = Block.objects.get(chain_id="sse", height=2)
    sql(f"DELETE FROM {table(Block)} WHERE id = %s", [block.pk])
    report = audit_chains(record=False, scope=AuditScope(chains=("sse",), supervision=False))
    assert [(m.what, m.chain, m.height) for m in report.mismatches] == [("chain_head", "sse", 2)]


def test_edited_chunk_roots_are_caught(chains):
    block = SupervisionBlock.objects.order_by("height").first()
    sql(f"UPDATE {table(SupervisionBlock)} SET chunk_roots = %s WHERE id = %s", ["ab" * 32, block.pk])
    report = audit_chains()
    assert [(m.what, m.supervision_height) for m in report.mismatches] == [("chunk_roots", block.height)]


def test_missing_chunk_roots_are_caught(chains):
    block = SupervisionBlock.objects.order_by("height").first()
    sql(f"UPDATE {table(SupervisionBlock)} SET chunk_roots = '' WHERE id = %s", [block.pk])
    report = audit_chains()
    assert [(m.what, m.supervision_height, m.detail) for m in report.mismatches] == [
        ("chunk_roots", block.height, "no chunk roots stored")]


def test_mismatches_beyond_the_kept_list_are_counted_and_the_dashboard_shows_the_true_count(
        chains, regulator_client):
    edited = list(Transaction.objects.order_by("chain_id", "height", "index")[:4])
    for tx in edited:
        sql(f"UPDATE {table(Transaction)} SET nonce = %s WHERE id = %s", [f"forged-{tx.pk}", tx.pk])
    report = audit_chains(max_reported=2)
    assert report.mismatch_count == 4 and not report.ok
    assert [m.tx_id for m in report.mismatches] == [tx.tx_id for tx in edited[:2]]
    run = AuditRun.objects.get(pk=report.run_id)
    assert run.mismatch_count == 4
    assert [m["tx_id"] for m in run.mismatches] == [tx.tx_id for tx in edited[:2]]
    html = regulator_client.get("/").content.decode()
    assert "4 处不一致" in html
