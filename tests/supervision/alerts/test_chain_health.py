"""Chain-health alerts from real refused submissions (ECP/1 §5) and from silent chains."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO
from unittest import mock

import pytest
from django.core.management import call_command
from django.utils import timezone

from businesschain.models import Chain, RejectedSubmission
from supervision.models import Alert
from supervision.services import chains_check_stalled
from tests.chainkit import TestChain

pytestmark = pytest.mark.django_db


@pytest.fixture
def sse() -> TestChain:
    return TestChain.register("sse")


def submit(client, chain, block, capture):
    with capture(execute=True):
        return chain.post(client, block)


def test_forged_signature_of_a_registered_node_is_rejected_and_alerted(
    client, sse, django_capture_on_commit_callbacks,
):
    block = sse.block(tamper=lambda node, sig: "00" * 64 if node == "sse-node-2" else sig)
    response = submit(client, sse, block, django_capture_on_commit_callbacks)
    assert response.status_code == 422 and response.json()["code"] == "bad_signature"
    alert = Alert.objects.get()
    rejection = RejectedSubmission.objects.get()
    assert (alert.code, alert.severity, alert.status) == ("bad_signature", "high", "open")
    assert (alert.chain_id, alert.block_height) == ("sse", 0)
    assert alert.fingerprint == f"bad_signature:sse:0:{block['block_hash']}"
    assert alert.evidence["node"] == "sse-node-2"
    assert alert.evidence["rejection_id"] == rejection.pk
    assert alert.evidence["block_hash"] == block["block_hash"]
    assert "sse-node-2" in alert.detail_zh and "sse-node-2" in alert.detail_en


def test_the_same_bad_block_sent_again_is_one_alert_seen_twice(client, sse,
                                                                django_capture_on_commit_callbacks):
    block = sse.block(tamper=lambda node, sig: "00" * 64 if node == "sse-node-1" else sig)
    submit(client, sse, block, django_capture_on_commit_callbacks)
    submit(client, sse, block, django_capture_on_commit_callbacks)
    assert RejectedSubmission.objects.count() == 2
    alert = Alert.objects.get()
    assert alert.occurrences == 2
    assert alert.evidence["rejection_id"] == RejectedSubmission.objects.order_by("-id").first().pk


def test_block_not_linking_to_the_head_is_alerted(client, sse, django_capture_on_commit_callbacks):
    genesis = sse.block()
    assert submit(client, sse, genesis, django_capture_on_commit_callbacks).status_code == 201
    sse.accept(genesis)
    block = sse.block(prev_hash="ab" * 32)
    response = submit(client, sse, block, django_capture_on_commit_callbacks)
    assert response.json()["code"] == "bad_prev_hash"
    alert = Alert.objects.get()
    assert (alert.code, alert.severity, alert.block_height) == ("bad_prev_hash", "high", 1)
    assert alert.evidence["expected_prev_hash"] == genesis["block_hash"]


def test_other_rejections_raise_no_alert(client, sse, django_capture_on_commit_callbacks):
    too_few = sse.block(signers=["sse-node-1", "sse-node-2"])  # quorum is 3
    response = submit(client, sse, too_few, django_capture_on_commit_callbacks)
    assert response.json()["code"] == "quorum_not_met"
    assert not Alert.objects.exists()


def test_fork_with_a_valid_quorum_is_a_critical_alert_and_the_chain_is_forked(
    client, sse, django_capture_on_commit_callbacks,
):
    genesis = sse.submit(client)
    competing = sse.block(height=0, prev_hash="0" * 64)
    assert competing["block_hash"] != genesis["block_hash"]
    with mock.patch("supervision.services.publish_chain_status") as publish_status:
        response = submit(client, sse, competing, django_capture_on_commit_callbacks)
    assert response.status_code == 409 and response.json()["code"] == "fork"
    alert = Alert.objects.get()
    assert (alert.code, alert.severity, alert.block_height) == ("fork", "critical", 0)
    assert alert.evidence["stored_hash"] == genesis["block_hash"]
    assert alert.evidence["block_hash"] == competing["block_hash"]
    assert alert.evidence["consensus_failure"] is True
    assert Chain.objects.get(id="sse").status == "forked"
    publish_status.assert_called_once_with("sse")


def test_fork_without_a_valid_quorum_stays_a_rejection_record(client, sse,
                                                              django_capture_on_commit_callbacks):
    sse.submit(client)
    competing = sse.block(height=0, prev_hash="0" * 64, signers=["sse-node-1"])
    response = submit(client, sse, competing, django_capture_on_commit_callbacks)
    assert response.json()["code"] == "fork"
    assert RejectedSubmission.objects.filter(code="fork").count() == 1
    assert not Alert.objects.exists()
    assert Chain.objects.get(id="sse").status == "active"


# --- stalled chains ---------------------------------------------------------------------------

def test_silent_chain_is_marked_stalled_once_and_alerted(client, sse, django_capture_on_commit_callbacks):
    sse.submit(client)
    chain = Chain.objects.get(id="sse")
    later = chain.last_block_at + chain.stall_interval + timedelta(seconds=1)
    with mock.patch("supervision.services.publish_chain_status") as publish_status, \
            django_capture_on_commit_callbacks(execute=True):
        result = chains_check_stalled(now=later)
    assert result.stalled == ["sse"]
    publish_status.assert_called_once_with("sse")
    assert Chain.objects.get(id="sse").status == "stalled"
    alert = Alert.objects.get()
    assert (alert.code, alert.severity, alert.chain_id, alert.block_height) == (
        "chain_stalled", "medium", "sse", 0)
    assert alert.evidence["silent_seconds"] == int((later - chain.last_block_at).total_seconds())
    # Still silent: no second alert, no repeat.
    assert chains_check_stalled(now=later + timedelta(minutes=5)).stalled == []
    assert Alert.objects.get().occurrences == 1


def test_chain_within_its_interval_is_not_stalled(client, sse):
    sse.submit(client)
    chain = Chain.objects.get(id="sse")
    assert chains_check_stalled(now=chain.last_block_at + chain.stall_interval).stalled == []
    assert not Alert.objects.exists()


def test_a_chain_that_never_delivered_stalls_from_its_registration(sse):
    chain = Chain.objects.get(id="sse")
    Chain.objects.filter(id="sse").update(stall_interval=timedelta(seconds=30))
    assert chains_check_stalled(now=chain.created_at + timedelta(seconds=31)).stalled == ["sse"]
    assert Alert.objects.get().block_height is None


def test_delivering_again_makes_it_active_and_a_new_stall_is_a_new_alert(client, sse):
    sse.submit(client)
    chain = Chain.objects.get(id="sse")
    chains_check_stalled(now=timezone.now() + chain.stall_interval + timedelta(seconds=5))
    assert Chain.objects.get(id="sse").status == "stalled"
    sse.submit(client)
    assert Chain.objects.get(id="sse").status == "active"
    chains_check_stalled(now=timezone.now() + chain.stall_interval + timedelta(seconds=5))
    assert sorted(Alert.objects.values_list("block_height", flat=True)) == [0, 1]


def test_forked_and_suspended_chains_are_not_checked(sse):
    Chain.objects.filter(id="sse").update(status="forked")
    assert chains_check_stalled(now=timezone.now() + timedelta(days=1)).stalled == []
    assert Chain.objects.get(id="sse").status == "forked"


def test_check_chain_health_command_runs_once(sse):
    Chain.objects.filter(id="sse").update(stall_interval=timedelta(seconds=0),
                                          created_at=timezone.now() - timedelta(seconds=5))
    out = StringIO()
    call_command("check_chain_health", stdout=out)
    assert "newly stalled: sse" in out.getvalue()
    assert Alert.objects.filter(code="chain_stalled").count() == 1
