"""The supervisor's SM2 key: from SUPERVISOR_KEY_FILE, generated in development, published, and
rotated without breaking old blocks."""

from __future__ import annotations

import io
import stat

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from gm import cert, sm2
from supervision import keys
from supervision.anchoring import anchors_create, supervision_block_seal
from supervision.audit import audit_chains
from supervision.models import SupervisionBlock, SupervisorKey
from tests.supervision.chain.verifier import sm2_verify

pytestmark = pytest.mark.django_db


def seal_one(height: int) -> SupervisionBlock:
    anchors_create(chain_id="sim", heights=[height], block_hashes=[f"{height:064x}"])
    result = supervision_block_seal()
    return SupervisionBlock.objects.select_related("key").get(height=result.height)


def test_configured_key_file_is_loaded_and_registered_with_a_certificate(supervisor_key_file):
    private = sm2.load_private_key(supervisor_key_file.read_bytes())
    key = keys.signing_key()
    assert key.public_key == private.public_key().to_hex()
    row = SupervisorKey.objects.get()
    assert row.fingerprint == private.public_key().key_id().hex() and row.retired_at is None
    certificate = cert.load_certificate(row.certificate_pem)
    assert certificate.public_key == private.public_key()
    assert certificate.verify_signature(private.public_key())
    assert keys.signing_key() is key  # cached while the file is unchanged


def test_development_key_is_generated_once_with_mode_0600(settings, tmp_path):
    settings.DEBUG = True
    settings.SUPERVISOR_KEY_FILE = ""
    settings.VAR_DIR = tmp_path / "var"
    keys.forget_cached_key()
    first = keys.signing_key()
    path = tmp_path / "var" / "supervisor_key.pem"
    assert first.path == path and stat.S_IMODE(path.stat().st_mode) == 0o600
    keys.forget_cached_key()
    assert keys.signing_key().fingerprint == first.fingerprint


def test_production_refuses_to_run_without_a_key_file(settings, tmp_path):
    settings.DEBUG = False
    settings.SUPERVISOR_KEY_FILE = ""
    with pytest.raises(ImproperlyConfigured):
        keys.key_file_path()
    settings.SUPERVISOR_KEY_FILE = str(tmp_path / "missing.pem")
    keys.forget_cached_key()
    with pytest.raises(ImproperlyConfigured):
        keys.signing_key()


def test_rotation_keeps_old_blocks_verifiable_and_publishes_previous_keys(
        regulator_client, supervisor_key_file):
    old_block = seal_one(0)
    old_key = old_block.key
    out = io.StringIO()
    call_command("supervisor_key", "--rotate", stdout=out)
    assert "rotated" in out.getvalue()
    backups = list(supervisor_key_file.parent.glob("supervisor_key.pem.retired-*"))
    assert len(backups) == 1 and stat.S_IMODE(backups[0].stat().st_mode) == 0o600
    new_block = seal_one(1)
    assert new_block.key_id != old_key.pk
    old_key.refresh_from_db()
    assert old_key.retired_at is not None
    for height in (0, 1):
        data = regulator_client.get(f"/api/v1/supervision/blocks/{height}").json()
        assert sm2_verify(data["public_key"], bytes.fromhex(data["hash"]), bytes.fromhex(data["signature"]))
    published = regulator_client.get("/api/v1/supervision/key").json()
    assert published["public_key"] == new_block.key.public_key
    assert published["fingerprint"] == new_block.key.fingerprint
    assert "BEGIN CERTIFICATE" in published["certificate"]
    assert [p["fingerprint"] for p in published["previous"]] == [old_key.fingerprint]
    assert published["previous"][0]["retired_at"].endswith("Z")
    report = audit_chains(record=False)
    assert {m.what for m in report.mismatches} <= {"anchor_block"}  # fake anchors; signatures verify


def test_a_process_notices_a_rotated_key_file(supervisor_key_file):
    first = keys.signing_key()
    replacement = sm2.generate_private_key()
    supervisor_key_file.write_bytes(replacement.to_pem())
    second = keys.signing_key()
    assert second.fingerprint != first.fingerprint
    assert second.public_key == replacement.public_key().to_hex()
    assert list(SupervisorKey.objects.filter(retired_at__isnull=True).values_list("pk", flat=True)) == [
        second.key_id]


def test_key_endpoint_before_registration_answers_no_supervisor_key_and_writes_nothing(
        client, sse, settings, tmp_path, django_assert_max_num_queries):
    """Even in development, where a first signing would generate the key file, a GET only reads."""
    settings.DEBUG = True
    settings.SUPERVISOR_KEY_FILE = ""
    settings.VAR_DIR = tmp_path / "var"
    keys.forget_cached_key()
    with CaptureQueriesContext(connection) as queries:
        response = client.get("/api/v1/supervision/key", **sse.headers())
    assert response.status_code == 404
    assert response.json()["code"] == "no_supervisor_key"
    assert "manage.py supervisor_key" in response.json()["detail"]
    assert "run_sealer" in response.json()["detail"]
    writes = [q["sql"] for q in queries
              if q["sql"].lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE"))]
    assert writes == []
    assert not SupervisorKey.objects.exists()
    assert not (tmp_path / "var" / "supervisor_key.pem").exists()


def test_key_endpoint_publishes_the_key_the_command_registered(client, sse):
    assert client.get("/api/v1/supervision/key", **sse.headers()).json()["code"] == "no_supervisor_key"
    out = io.StringIO()
    call_command("supervisor_key", stdout=out)
    response = client.get("/api/v1/supervision/key", **sse.headers())
    assert response.status_code == 200
    assert response.json()["previous"] == []
    assert response.json()["fingerprint"] == SupervisorKey.objects.get().fingerprint
    assert response.json()["fingerprint"] in out.getvalue()


def test_sealer_start_up_registers_the_key_the_endpoint_publishes(client, sse, supervisor_key_file,
                                                                   monkeypatch):
    """`run_sealer` loads and registers the key before its loop starts (the loop is not run here)."""
    import signal

    from supervision.management.commands import run_sealer

    loops = []
    monkeypatch.setattr(run_sealer.Sealer, "run", lambda self: loops.append(self))
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    out = io.StringIO()
    try:
        call_command("run_sealer", "--audit-interval", "0", stdout=out)
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    assert len(loops) == 1
    private = sm2.load_private_key(supervisor_key_file.read_bytes())
    published = client.get("/api/v1/supervision/key", **sse.headers()).json()
    assert published["public_key"] == private.public_key().to_hex()
    assert published["fingerprint"][:16] in out.getvalue()
