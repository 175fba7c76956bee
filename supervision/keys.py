"""The supervisor's SM2 signing key (ECP/1 §6).

The private key lives only in a PEM file: `settings.SUPERVISOR_KEY_FILE`, or in development
(`DEBUG`) `var/supervisor_key.pem`, generated on first use with mode 0600. The key is loaded (and,
in development, generated) and registered only by the writers that sign or manage it: the sealer
at start-up and on sealing, and `manage.py supervisor_key`; reads never write. `SupervisorKey` rows
hold public keys and self-signed certificates; every supervision block references the key that
signed it, so rotation (`supervisor_key_rotate`, `manage.py supervisor_key --rotate`) keeps old
blocks verifiable. A process notices a rotated file on its next use (the file's stat is checked).
"""

from __future__ import annotations

import logging
import os
import secrets
import tempfile
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.utils import timezone

from businesschain.errors import NotFound
from businesschain.protocol.times import format_time
from gm import cert, sm2
from supervision.models import SupervisorKey

log = logging.getLogger(__name__)

CERTIFICATE_YEARS = 10
DEV_KEY_NAME = "supervisor_key.pem"


@dataclass(frozen=True)
class SigningKey:
    """The loaded private key and the `SupervisorKey` row it is registered as."""

    private_key: sm2.SM2PrivateKey
    public_key: str  # 04‖X‖Y hex
    fingerprint: str
    key_id: int
    path: Path

    def sign(self, message: bytes) -> str:
        """DER signature, hex (what ECP/1 §6 says the supervisor emits)."""
        return self.private_key.sign(message).hex()

    def __repr__(self) -> str:
        return f"SigningKey({self.fingerprint[:16]}…, {self.path})"


def fingerprint(public_key: sm2.SM2PublicKey) -> str:
    """SM3 of the 65 bytes 04‖X‖Y, hex."""
    return public_key.key_id().hex()


def key_file_path() -> Path:
    """Where the private key is read from (and, in development, generated)."""
    configured = getattr(settings, "SUPERVISOR_KEY_FILE", "")
    if configured:
        return Path(configured)
    if not settings.DEBUG:
        raise ImproperlyConfigured("SUPERVISOR_KEY_FILE must name the supervisor's SM2 PEM key "
                                   "when DJANGO_DEBUG is off.")
    return Path(settings.VAR_DIR) / DEV_KEY_NAME


def _write_private_key(path: Path, key: sm2.SM2PrivateKey, *, replace: bool = True) -> bool:
    """Write the PEM atomically with mode 0600, so a reader never sees half a key. With
    `replace=False` an existing file wins (two processes generating at once agree on one key).
    Returns whether this call's key is now in place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(key.to_pem())
            handle.flush()
            os.fsync(handle.fileno())
        if replace:
            os.replace(temp, path)
            return True
        try:
            os.link(temp, path)  # fails if the file exists: never overwrite a key
        except FileExistsError:
            return False
        return True
    finally:
        Path(temp).unlink(missing_ok=True)


def _read_or_create(path: Path) -> sm2.SM2PrivateKey:
    if not path.exists():
        if not settings.DEBUG:
            raise ImproperlyConfigured(f"The supervisor key file {path} does not exist.")
        if _write_private_key(path, sm2.generate_private_key(), replace=False):
            log.warning("generated a development supervisor key at %s", path)
    try:
        return sm2.load_private_key(path.read_bytes())
    except ValueError as error:
        raise ImproperlyConfigured(f"{path} is not an SM2 private key in PEM: {error}") from error


def self_signed_certificate(key: sm2.SM2PrivateKey, *, now: datetime | None = None) -> str:
    """A self-signed SM2 certificate of the supervisor key, PEM."""
    moment = now or timezone.now()
    pem = cert.make_certificate(
        key, key,
        {"C": "CN", "O": "Supervision chain", "CN": f"supervisor {fingerprint(key.public_key())[:16]}"},
        serial=secrets.randbits(150) | 1,
        not_before=moment - timedelta(minutes=5),
        not_after=moment + timedelta(days=365 * CERTIFICATE_YEARS),
        is_ca=False,
    )
    return pem.decode("ascii")


def supervisor_key_register(*, private_key: sm2.SM2PrivateKey) -> SupervisorKey:
    """Make `private_key` the current supervisor key: insert its row (with a certificate) unless
    present, and retire every other current key. Idempotent; safe when processes race."""
    public = private_key.public_key()
    fp = fingerprint(public)
    row = SupervisorKey.objects.filter(fingerprint=fp).first()
    if row is not None and row.retired_at is None and not (
        SupervisorKey.objects.filter(retired_at__isnull=True).exclude(pk=row.pk).exists()
    ):
        return row
    with transaction.atomic():
        now = timezone.now()
        if row is None:
            row, _ = SupervisorKey.objects.get_or_create(
                fingerprint=fp,
                defaults={"public_key": public.to_hex(),
                          "certificate_pem": self_signed_certificate(private_key, now=now)},
            )
        elif row.retired_at is not None:  # an old key file brought back: it is current again
            row.retired_at = None
            row.save(update_fields=["retired_at"])
        SupervisorKey.objects.filter(retired_at__isnull=True).exclude(pk=row.pk).update(retired_at=now)
    log.info("supervisor key %s is current", fp[:16])
    return row


_cache_lock = threading.Lock()
_cache: dict[str, Any] = {}


def signing_key() -> SigningKey:
    """The current signing key, loaded once per process and reloaded when its file changes.
    Registers the key in `SupervisorKey` on load (generating it first in development)."""
    path = key_file_path()
    with _cache_lock:
        try:
            stat = path.stat()
            stamp: tuple[Any, ...] = (str(path), stat.st_mtime_ns, stat.st_size, stat.st_ino)
        except FileNotFoundError:
            stamp = (str(path), None)
        cached = _cache.get("key")
        if cached is not None and _cache.get("stamp") == stamp and stamp[1] is not None:
            return cached
        private = _read_or_create(path)
        stat = path.stat()
        row = supervisor_key_register(private_key=private)
        key = SigningKey(private_key=private, public_key=row.public_key, fingerprint=row.fingerprint,
                         key_id=row.pk, path=path)
        _cache["key"] = key
        _cache["stamp"] = (str(path), stat.st_mtime_ns, stat.st_size, stat.st_ino)
        return key


def forget_cached_key() -> None:
    """Drop the per-process cache (tests, and after writing a new key file)."""
    with _cache_lock:
        _cache.clear()


def supervisor_key_rotate() -> SigningKey:
    """Write a new key file (the old one is kept beside it as `<name>.retired-<time>`), register
    the new key and retire the old one. Blocks signed by the old key keep verifying with it."""
    path = key_file_path()
    if path.exists():
        stamp = timezone.now().strftime("%Y%m%dT%H%M%S%fZ")
        backup = path.with_name(f"{path.name}.retired-{stamp}")
        backup.write_bytes(path.read_bytes())
        os.chmod(backup, 0o600)
    new = sm2.generate_private_key()
    _write_private_key(path, new)
    forget_cached_key()
    supervisor_key_register(private_key=new)
    return signing_key()


# --- reads ----------------------------------------------------------------------------------------

def current_key() -> SupervisorKey:
    """The current key's row. Only reads: keys are registered by `manage.py supervisor_key` and
    by the sealer at start-up (`manage.py run_sealer`), never by a reader such as
    `GET supervision/key`. NotFound `no_supervisor_key` while none is."""
    row = SupervisorKey.objects.filter(retired_at__isnull=True).order_by("-created_at", "-id").first()
    if row is None:
        raise NotFound("No supervisor key is registered yet: the sealer registers it when it starts "
                       "(`manage.py run_sealer`), or run `manage.py supervisor_key`.",
                       code="no_supervisor_key")
    return row


def key_publication() -> dict[str, Any]:
    """`GET supervision/key`: the current public key and certificate, and the retired keys."""
    row = current_key()
    previous = SupervisorKey.objects.exclude(pk=row.pk).order_by("-created_at", "-id")
    return {
        "public_key": row.public_key,
        "fingerprint": row.fingerprint,
        "certificate": row.certificate_pem or None,
        "previous": [
            {"public_key": p.public_key, "fingerprint": p.fingerprint,
             "retired_at": format_time(p.retired_at) if p.retired_at else None}
            for p in previous
        ],
    }
