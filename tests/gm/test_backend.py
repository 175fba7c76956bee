"""Backend choice: naming, forcing, environment variable, library discovery, fallback."""

from __future__ import annotations

import ctypes.util
import os
import subprocess
import sys

import pytest

import gm
from gm import _backend, _libcrypto, sm2
from gm.errors import BackendUnavailable


def test_unknown_backends_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown SM2 backend"):
        gm.set_backend("rsa")


def test_openssl_is_preferred_when_it_loads() -> None:
    if "openssl" not in gm.available_backends():
        pytest.skip("no libcrypto with SM2 here")
    with gm.use_backend(None):
        assert gm.backend_name().startswith("openssl 3.")


@pytest.mark.parametrize(("value", "prefix"), [("gmssl", "gmssl (pure Python)"), ("openssl", "openssl 3.")])
def test_gm_backend_environment_variable_forces_a_backend(value: str, prefix: str) -> None:
    if value not in gm.available_backends():
        pytest.skip(f"{value} unavailable")
    env = {**os.environ, "GM_BACKEND": value}
    out = subprocess.run([sys.executable, "-c", "import gm; print(gm.backend_name())"], env=env,
                         capture_output=True, text=True, check=True, cwd=os.path.dirname(gm.__path__[0]))
    assert out.stdout.startswith(prefix)


def test_libcrypto_is_found_through_hashlib_when_the_linker_cannot(monkeypatch: pytest.MonkeyPatch) -> None:
    if "openssl" not in gm.available_backends():
        pytest.skip("no libcrypto with SM2 here")
    monkeypatch.setattr(ctypes.util, "find_library", lambda name: None)
    monkeypatch.delenv("GM_LIBCRYPTO", raising=False)
    backend = _libcrypto.OpenSSLBackend()
    assert "libcrypto" in backend.path or "_hashlib" in backend.path
    key = sm2.generate_private_key()
    handle = backend.load_private(key.to_int(), key.public_key().to_bytes())
    r, s = backend.sign(handle, b"m", sm2.DEFAULT_UID)
    assert key.public_key().verify(b"m", r.to_bytes(32, "big") + s.to_bytes(32, "big"))


def test_automatic_choice_falls_back_to_gmssl(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_backend, "_loaded", {k: v for k, v in _backend._loaded.items() if k != "openssl"})
    monkeypatch.setattr(_backend, "_failed", {"openssl": BackendUnavailable("simulated: no SM2")})
    monkeypatch.setattr(_backend, "_forced", None)
    monkeypatch.setattr(_backend, "_active", None)
    monkeypatch.delenv("GM_BACKEND", raising=False)
    assert gm.backend_name() == "gmssl (pure Python)"
    assert gm.available_backends() == ["gmssl"]
    with pytest.raises(BackendUnavailable, match="simulated"):
        gm.set_backend("openssl")  # asked for by name: an error, not a silent fallback


def test_django_system_check_reports_the_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    from businesschain.checks import gm_backend_check

    monkeypatch.setattr("sys.argv", ["manage.py", "check"])
    messages = gm_backend_check(None)
    assert [m.id for m in messages] == ["gm.I001"]
    assert gm.backend_name() in messages[0].msg


def test_django_system_check_errors_without_sm3(monkeypatch: pytest.MonkeyPatch) -> None:
    from businesschain import checks

    monkeypatch.setattr(checks.sm3, "available", lambda: False)
    monkeypatch.setattr("sys.argv", ["manage.py", "migrate"])
    # Errors show for every command; the backend note only for `manage.py check`.
    assert [m.id for m in checks.gm_backend_check(None)] == ["gm.E001"]
