"""The dashboard's view of the supervision chain."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.translation import override

from supervision.anchoring import anchors_create, supervision_block_seal
from supervision.audit import audit_chains
from supervision.chain_selectors import supervision_status
from supervision.models import AuditRun

pytestmark = pytest.mark.django_db


def test_status_before_anything_is_sealed():
    status = supervision_status()
    assert status["head"] is None and status["pending_anchors"] == 0 and status["last_audit"] is None
    html = render_to_string("supervision/_supervision_status.html", {"status": status})
    assert "尚未封块" in html and "尚未审计" in html


def test_status_shows_head_seal_rate_pending_and_last_audit():
    now = timezone.now()
    anchors_create(chain_id="sim", heights=[0, 1], block_hashes=["a" * 64, "b" * 64])
    supervision_block_seal(now=now - timedelta(hours=2))
    anchors_create(chain_id="sim", heights=[2, 3, 4], block_hashes=["c" * 64, "d" * 64, "e" * 64])
    supervision_block_seal(max_anchors=2, now=now - timedelta(minutes=5))
    audit_chains()
    status = supervision_status(now=now)
    assert status["head"]["height"] == 1 and status["head"]["anchor_count"] == 2
    assert status["blocks_last_hour"] == 1 and status["anchors_last_hour"] == 2
    assert status["seal_rate_per_minute"] == round(1 / 60, 2)
    assert status["pending_anchors"] == 1 and status["oldest_pending_age_seconds"] is not None
    audit = status["last_audit"]
    assert audit["ok"] is False and audit["mismatch_count"] == 5  # fake anchors name no stored block
    assert audit["mismatches"][0]["what"] == "anchor_block"
    with override("zh-hans"):
        html = render_to_string("supervision/_supervision_status.html", {"status": status})
    assert "处不一致" in html and "anchor_block" in html and status["head"]["block_hash"] in html
    with override("en"):
        render_to_string("supervision/_supervision_status.html", {"status": status})


def test_status_shows_a_running_audit():
    AuditRun.objects.create(started_at=timezone.now())
    status = supervision_status()
    assert status["last_audit"]["running"] is True
    assert "审计进行中" in render_to_string("supervision/_supervision_status.html", {"status": status})
