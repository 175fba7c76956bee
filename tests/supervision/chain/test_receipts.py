"""Anchoring, sealing and receipts (ECP/1 §5–§6), checked by an independent verifier."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from businesschain.models import Block
from businesschain.protocol.hashing import compute_block_hash
from supervision.anchoring import anchors_create, anchors_sweep, supervision_block_seal, supervision_header
from supervision.models import Anchor, SupervisionBlock
from tests.supervision.chain.conftest import evidence, push
from tests.supervision.chain.verifier import cj, sm2_verify, sm3, verify_receipt

pytestmark = pytest.mark.django_db


def receipt(client, block_hash: str, chain=None):
    headers = chain.headers() if chain is not None else {}
    return client.get(f"/api/v1/receipts/{block_hash}", **headers)


def test_accepted_block_is_anchored_when_the_submission_commits(
        client, sse, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        block = sse.submit(client, evidence(sse))
    anchor = Anchor.objects.get()
    assert (anchor.chain_id, anchor.height, anchor.block_hash) == ("sse", 0, block["block_hash"])
    assert anchor.leaf_hash == sm3(b"\x00" + cj({"block_hash": block["block_hash"], "chain": "sse",
                                                 "height": 0})).hex()
    assert anchor.supervision_block is None and anchor.leaf_index is None


def test_sweep_anchors_blocks_whose_receiver_never_ran_including_gaps(client, sse):
    push(client, sse, blocks=4)  # on-commit receivers do not run inside the test transaction
    assert Anchor.objects.count() == 0
    assert anchors_sweep() == 4
    assert anchors_sweep() == 0
    Anchor.objects.filter(height=1).delete()  # a receiver failed while later ones succeeded
    assert anchors_sweep() == 0  # the quick sweep looks above the highest anchor only
    assert anchors_sweep(full=True) == 1
    assert sorted(Anchor.objects.values_list("height", flat=True)) == [0, 1, 2, 3]


def test_receipt_is_pending_before_sealing_then_proves_the_block(client, regulator_client, sse):
    [block] = push(client, sse)
    response = receipt(client, block["block_hash"], sse)
    assert response.status_code == 202
    assert response.json() == {"status": "pending"}
    anchors_sweep()
    assert receipt(regulator_client, block["block_hash"]).status_code == 202
    result = supervision_block_seal()
    assert result is not None and result.height == 0 and result.anchor_count == 1
    response = receipt(client, block["block_hash"], sse)
    assert response.status_code == 200, response.content
    data = response.json()
    verify_receipt(data, chain="sse", height=0, block_hash=block["block_hash"])
    assert data["leaf_index"] == 0 and data["tree_size"] == 1 and data["audit_path"] == []
    assert data["supervision_block"]["header"]["prev_hash"] == "0" * 64


@pytest.mark.parametrize("size", [2, 3, 5, 7, 8, 13])
def test_every_leaf_of_a_sealed_block_has_a_receipt_the_independent_verifier_accepts(
        client, regulator_client, sse, szse, size):
    blocks = [(sse, b) for b in push(client, sse, blocks=size - size // 2, txs=1)]
    blocks += [(szse, b) for b in push(client, szse, blocks=size // 2, txs=1)]
    anchors_sweep()
    assert supervision_block_seal().anchor_count == size
    seen = set()
    for chain, block in blocks:
        data = receipt(regulator_client, block["block_hash"]).json()
        verify_receipt(data, chain=chain.chain_id, height=block["header"]["height"],
                       block_hash=block["block_hash"])
        seen.add(data["leaf_index"])
    assert seen == set(range(size))


def test_receipt_does_not_verify_when_anything_is_changed(client, regulator_client, sse):
    blocks = push(client, sse, blocks=3, txs=1)
    anchors_sweep()
    supervision_block_seal()
    data = receipt(regulator_client, blocks[1]["block_hash"]).json()
    verify_receipt(data, chain="sse", height=1, block_hash=blocks[1]["block_hash"])
    with pytest.raises(AssertionError):
        verify_receipt(data, chain="sse", height=2, block_hash=blocks[1]["block_hash"])
    with pytest.raises(AssertionError):
        verify_receipt({**data, "leaf_index": (data["leaf_index"] + 1) % 3}, chain="sse", height=1,
                       block_hash=blocks[1]["block_hash"])
    forged = {**data["supervision_block"], "signature": data["supervision_block"]["signature"][:-2] + "00"}
    with pytest.raises(AssertionError):
        verify_receipt({**data, "supervision_block": forged}, chain="sse", height=1,
                       block_hash=blocks[1]["block_hash"])


def test_supervision_chain_links_blocks_by_hash_and_serves_head_and_heights(client, regulator_client, sse):
    for _ in range(3):
        push(client, sse, blocks=2, txs=1)
        anchors_sweep()
        supervision_block_seal()
    assert supervision_block_seal() is None  # nothing pending
    head = regulator_client.get("/api/v1/supervision/head").json()
    assert head["header"]["height"] == 2
    prev = "0" * 64
    for height in range(3):
        data = client.get(f"/api/v1/supervision/blocks/{height}", **sse.headers()).json()
        assert set(data) == {"header", "hash", "signature", "public_key"}
        assert data["header"]["prev_hash"] == prev and data["header"]["anchor_count"] == 2
        assert sm3(cj(data["header"])).hex() == data["hash"]
        assert sm2_verify(data["public_key"], bytes.fromhex(data["hash"]), bytes.fromhex(data["signature"]))
        prev = data["hash"]
    assert head["hash"] == prev
    missing = regulator_client.get("/api/v1/supervision/blocks/3")
    assert missing.status_code == 404 and missing.json()["code"] == "unknown_block"


def test_supervision_head_is_404_before_the_first_seal(regulator_client):
    response = regulator_client.get("/api/v1/supervision/head")
    assert response.status_code == 404
    assert response.json()["code"] == "unknown_block"


def test_a_chain_reads_only_its_own_receipts(client, regulator_client, sse, szse):
    [mine] = push(client, sse)
    [theirs] = push(client, szse)
    anchors_sweep()
    supervision_block_seal()
    assert receipt(client, mine["block_hash"], sse).status_code == 200
    denied = receipt(client, theirs["block_hash"], sse)
    assert denied.status_code == 403 and denied.json()["code"] == "permission_denied"
    assert receipt(regulator_client, theirs["block_hash"]).status_code == 200
    unknown = receipt(regulator_client, "ab" * 32)
    assert unknown.status_code == 404 and unknown.json()["code"] == "unknown_block"
    assert receipt(client, "not-a-hash", sse).status_code == 404
    anonymous = Client()
    for response in (receipt(anonymous, mine["block_hash"]), anonymous.get("/api/v1/supervision/head")):
        assert response.status_code == 401 and response.json()["code"] == "not_authenticated"


def test_receipt_of_an_accepted_block_without_anchor_yet_is_pending(client, sse):
    [block] = push(client, sse)
    assert not Anchor.objects.exists()
    assert receipt(client, block["block_hash"], sse).status_code == 202


def test_block_explorer_shows_the_block_with_its_anchor(client, regulator_client, sse, szse):
    [block] = push(client, sse, txs=3)
    url = "/api/v1/chains/sse/blocks/0"
    data = regulator_client.get(url).json()
    assert data["block_hash"] == block["block_hash"] and len(data["transactions"]) == 3
    assert data["header"] == block["header"] and data["anchor"] is None
    anchors_sweep()
    assert client.get(url, **sse.headers()).json()["anchor"] == {
        "status": "pending", "leaf_index": None, "supervision_height": None,
        "receipt": f"/api/v1/receipts/{block['block_hash']}"}
    supervision_block_seal()
    anchor = regulator_client.get(url).json()["anchor"]
    assert (anchor["status"], anchor["leaf_index"], anchor["supervision_height"]) == ("sealed", 0, 0)
    assert client.get(url, **szse.headers()).status_code == 403
    missing = regulator_client.get("/api/v1/chains/sse/blocks/9")
    assert missing.status_code == 404 and missing.json()["code"] == "unknown_block"


def test_receipt_query_count_is_bounded(client, regulator_client, sse, django_assert_max_num_queries):
    blocks = push(client, sse, blocks=5, txs=1)
    anchors_sweep()
    supervision_block_seal()
    with django_assert_max_num_queries(8):
        assert receipt(client, blocks[3]["block_hash"], sse).status_code == 200


def test_blocks_seal_in_anchor_id_order_and_at_most_max_anchors_each(client, sse):
    push(client, sse, blocks=7, txs=1)
    anchors_sweep()
    assert supervision_block_seal(max_anchors=3).anchor_count == 3
    assert supervision_block_seal(max_anchors=3).anchor_count == 3
    assert supervision_block_seal(max_anchors=3).anchor_count == 1
    rows = list(Anchor.objects.order_by("id").values_list("supervision_block__height", "leaf_index"))
    assert rows == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2), (2, 0)]
    assert SupervisionBlock.objects.count() == 3
    assert Block.objects.count() == 7


def test_receipts_from_chunk_roots_verify_in_a_large_block(regulator_client):
    hashes = [f"{i:064x}" for i in range(1_300)]  # five full 256-leaf chunks and a partial one
    anchors_create(chain_id="sse", heights=list(range(1_300)), block_hashes=hashes)
    sealed = supervision_block_seal()
    assert sealed.anchor_count == 1_300
    assert len(SupervisionBlock.objects.get().chunk_roots) == 6 * 64
    for height in (0, 255, 256, 700, 1_280, 1_299):
        with CaptureQueriesContext(connection) as queries:
            data = receipt(regulator_client, hashes[height]).json()
        verify_receipt(data, chain="sse", height=height, block_hash=hashes[height])
        assert data["leaf_index"] == height and data["tree_size"] == 1_300
        # One read of leaf hashes by supervision block: the anchor's own chunk, not the whole block.
        leaf_reads = [q["sql"] for q in queries if "leaf_hash" in q["sql"]
                      and '."supervision_block_id" = ' in q["sql"].partition(" WHERE ")[2]]
        assert len(leaf_reads) == 1
        start = height - height % 256
        assert f'."leaf_index" >= {start}' in leaf_reads[0]
        assert f'."leaf_index" < {start + 256}' in leaf_reads[0]


def test_large_block_without_chunk_roots_answers_a_precise_error_not_a_whole_tree(regulator_client):
    hashes = [f"{i:064x}" for i in range(300)]
    anchors_create(chain_id="sse", heights=list(range(300)), block_hashes=hashes)
    supervision_block_seal()
    SupervisionBlock.objects.update(chunk_roots="")
    response = receipt(regulator_client, hashes[7])
    assert response.status_code == 500
    assert response.json()["code"] == "chunk_roots_missing"
    assert "manage.py migrate" in response.json()["detail"]


def test_single_chunk_block_needs_no_stored_chunk_roots(regulator_client):
    hashes = [f"{i:064x}" for i in range(5)]
    anchors_create(chain_id="sse", heights=list(range(5)), block_hashes=hashes)
    supervision_block_seal()
    SupervisionBlock.objects.update(chunk_roots="")
    data = receipt(regulator_client, hashes[3]).json()
    verify_receipt(data, chain="sse", height=3, block_hash=hashes[3])


def test_supervision_block_answer_carries_the_header_the_sealer_hashed_and_signed(regulator_client):
    anchors_create(chain_id="sse", heights=[0], block_hashes=["ab" * 32])
    supervision_block_seal()
    block = SupervisionBlock.objects.get()
    data = regulator_client.get("/api/v1/supervision/blocks/0").json()
    assert data["header"] == supervision_header(
        height=block.height, prev_hash=block.prev_hash, timestamp=block.timestamp,
        anchor_count=block.anchor_count, anchor_root=block.anchor_root)
    assert compute_block_hash(data["header"]) == block.block_hash == data["hash"]
