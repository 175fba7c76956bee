"""Fixtures for gm: every SM2 test runs once per backend that loads here."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

import gm
from gm._backend import BACKENDS
from gm.errors import BackendUnavailable

#: Set by `.ci/run`: where OpenSSL's SM2 must be present, its absence fails instead of skipping.
REQUIRE_OPENSSL = os.environ.get("GM_REQUIRE_OPENSSL") == "1"


def _unavailable(reason: str) -> None:
    if REQUIRE_OPENSSL:
        pytest.fail(f"{reason} (GM_REQUIRE_OPENSSL=1)")
    pytest.skip(reason)


@pytest.fixture(params=BACKENDS)
def sm2_backend(request: pytest.FixtureRequest) -> Iterator[str]:
    """The backend key, made active for the test ("openssl", "gmssl")."""
    try:
        previous = gm.set_backend(request.param)
    except BackendUnavailable as exc:
        _unavailable(f"{request.param} backend unavailable: {exc}")
    yield request.param
    gm.set_backend(previous)


def examples(backend: str, fast: int) -> int:
    """Hypothesis example budget: gmssl verifies ~80 signatures/s, so it gets far fewer."""
    return fast if backend == "openssl" else max(3, fast // 10)


@pytest.fixture(scope="session")
def openssl_cli() -> str:
    """Path of an `openssl` command that knows SM2, else the test is skipped."""
    path = shutil.which("openssl")
    if path is None:
        _unavailable("no openssl command")
    probe = subprocess.run([path, "genpkey", "-algorithm", "SM2"], capture_output=True, check=False)
    if probe.returncode != 0:
        _unavailable("openssl command lacks SM2")
    return str(path)


def run(*args: str | Path, stdin: bytes | None = None) -> bytes:
    done = subprocess.run([str(a) for a in args], input=stdin, capture_output=True, check=False)
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, args))} failed: {done.stderr.decode(errors='replace')}")
    return done.stdout
