"""Chinese national cryptography (SM2, SM3, SM4), digital envelopes and SM2 certificates.

Pure Python modules with no Django: `gm.sm2`, `gm.sm3`, `gm.sm4`, `gm.envelope`, `gm.cert`,
`gm.errors`. SM3/SM4 run in OpenSSL (hashlib, cryptography); SM2 runs in the system libcrypto
through ctypes, or in gmssl where libcrypto lacks SM2 — see `backend_name()`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from gm import _backend


def backend_name() -> str:
    """The active SM2 implementation, e.g. "openssl 3.0.19 (libcrypto)" or "gmssl (pure Python)"."""
    return _backend.current().name


def set_backend(name: str | None) -> str | None:
    """Force the SM2 backend ("openssl" | "gmssl"), or None for automatic; returns the previous one.

    The `GM_BACKEND` environment variable does the same for a whole process.
    """
    return _backend.set_backend(name)


@contextmanager
def use_backend(name: str | None) -> Iterator[None]:
    """Run a block on one SM2 backend (process-wide, so meant for tests and benchmarks)."""
    previous = set_backend(name)
    try:
        yield
    finally:
        set_backend(previous)


def available_backends() -> list[str]:
    """Backends that load here, fastest first."""
    return _backend.available()


__all__ = ["available_backends", "backend_name", "set_backend", "use_backend"]
