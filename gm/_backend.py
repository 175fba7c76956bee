"""Which SM2 implementation runs: libcrypto when it has SM2, else gmssl.

The choice is made on first use (not at import), from `set_backend(...)`, else the `GM_BACKEND`
environment variable (`openssl` | `gmssl`), else the fastest one that loads. A backend that was
asked for by name and cannot load is an error, never a silent fallback.
"""

from __future__ import annotations

import os
import threading
from typing import Any, Protocol

from gm.errors import BackendUnavailable

BACKENDS = ("openssl", "gmssl")


class SM2Backend(Protocol):
    key: str
    name: str

    def generate(self) -> tuple[int, bytes]: ...
    def public_from_private(self, d: int) -> bytes: ...
    def load_private(self, d: int, point: bytes) -> Any: ...
    def sign(self, handle: Any, message: bytes, uid: bytes) -> tuple[int, int]: ...
    def verify(self, point: bytes, message: bytes, uid: bytes, r: int, s: int) -> bool: ...
    def encrypt(self, point: bytes, plaintext: bytes) -> bytes: ...
    def decrypt(self, handle: Any, ciphertext: bytes) -> bytes: ...


_lock = threading.Lock()
_loaded: dict[str, SM2Backend] = {}
_failed: dict[str, BackendUnavailable] = {}
_forced: str | None = None
_active: SM2Backend | None = None


def load(key: str) -> SM2Backend:
    """The backend called `key`, loading it once per process."""
    if key not in BACKENDS:
        raise ValueError(f"unknown SM2 backend {key!r}; choose from {', '.join(BACKENDS)}")
    with _lock:
        if key in _loaded:
            return _loaded[key]
        if key in _failed:
            raise _failed[key]
        try:
            if key == "openssl":
                from gm._libcrypto import OpenSSLBackend

                backend: SM2Backend = OpenSSLBackend()
            else:
                from gm._gmssl import GmsslBackend

                backend = GmsslBackend()
        except BackendUnavailable as exc:
            _failed[key] = exc
            raise
        _loaded[key] = backend
        return backend


def current() -> SM2Backend:
    global _active
    active = _active
    if active is not None:
        return active
    wanted = _forced or os.environ.get("GM_BACKEND", "").strip().lower() or None
    if wanted:
        active = load(wanted)
    else:
        try:
            active = load("openssl")
        except BackendUnavailable:
            active = load("gmssl")
    _active = active
    return active


def set_backend(key: str | None) -> str | None:
    """Force a backend (`"openssl"`, `"gmssl"`) or go back to automatic choice with None.

    Loads it now so a missing backend fails here; returns the previous forced key.
    """
    global _forced, _active
    previous = _forced
    backend = load(key) if key is not None else None
    _forced, _active = key, backend
    return previous


def available() -> list[str]:
    """Keys of the backends that load in this process."""
    found = []
    for key in BACKENDS:
        try:
            load(key)
        except BackendUnavailable:
            continue
        found.append(key)
    return found
