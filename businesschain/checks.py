"""System checks for the national-cryptography stack this app signs and verifies with."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from django.apps import AppConfig
from django.core.checks import CheckMessage, Error, Info, register

import gm
from gm import sm3
from gm.errors import BackendUnavailable


@register("gm")
def gm_backend_check(app_configs: Sequence[AppConfig] | None = None, **kwargs: Any) -> list[CheckMessage]:
    """Say which SM2 implementation runs; fail if SM3 or every SM2 backend is missing."""
    messages: list[CheckMessage] = []
    if not sm3.available():
        messages.append(Error(
            "SM3 is not available in hashlib.",
            hint="Run Python linked against OpenSSL ≥ 1.1.1 built with SM3 (hashlib.new('sm3')).",
            id="gm.E001",
        ))
    try:
        name = gm.backend_name()
    except BackendUnavailable as exc:
        messages.append(Error(f"No SM2 backend can be loaded: {exc}",
                              hint="Unset GM_BACKEND or install gmssl.", id="gm.E002"))
    else:
        if _explicit_check():
            messages.append(Info(f"SM2 backend: {name}", id="gm.I001"))
    return messages


def _explicit_check() -> bool:
    """The backend note is for `manage.py check`; every other command runs the checks too and
    would print it each time."""
    return sys.argv[1:2] == ["check"]
