"""PEM armour (RFC 7468): base64 DER between BEGIN/END lines."""

from __future__ import annotations

import base64
import binascii
import re

_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\s*(.*?)\s*-----END \1-----", re.DOTALL)


def encode(label: str, der: bytes) -> bytes:
    body = base64.b64encode(der)
    lines = [body[i:i + 64] for i in range(0, len(body), 64)]
    return b"\n".join([f"-----BEGIN {label}-----".encode(), *lines, f"-----END {label}-----".encode(), b""])


def decode(data: str | bytes, labels: tuple[str, ...]) -> tuple[str, bytes]:
    """The first block whose label is one of `labels` → (label, DER). ValueError if there is none."""
    raw = data.encode("ascii", "replace") if isinstance(data, str) else bytes(data)
    for match in _BLOCK.finditer(raw):
        label = match.group(1).decode()
        if label not in labels:
            continue
        if b":" in match.group(2):
            raise ValueError(f"encrypted PEM ({label}) is not supported")
        try:
            return label, base64.b64decode(re.sub(rb"\s+", b"", match.group(2)), validate=True)
        except binascii.Error as exc:
            raise ValueError(f"bad base64 in PEM {label}") from exc
    raise ValueError(f"no PEM block labelled {' or '.join(labels)}")


def is_pem(data: str | bytes) -> bool:
    head = data if isinstance(data, bytes) else data.encode("ascii", "replace")
    return b"-----BEGIN " in head
