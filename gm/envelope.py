"""Digital envelopes: SM4-GCM content under a random key, that key SM2-encrypted to each recipient.

Streams are sealed and opened chunk by chunk, so a multi-gigabyte file is never held in memory.
Each chunk is authenticated together with its index, a "final" flag and the whole header (the
STREAM construction of Hoang, Reyhanitabar, Rogaway and Vizár), so altering, dropping, reordering
or truncating anything is detected.

Format, version 1 (all integers big-endian)::

    header
      magic          4   b"GMEV"
      version        1   1
      flags          1   0 (reserved)
      chunk_size     4   plaintext bytes per chunk, 1 .. 16 MiB
      nonce_prefix   7   random
      recipients     2   count n ≥ 1, then n times:
        key_id      32     SM3(04‖X‖Y) of the recipient's public key
        length       2     length of the next field
        wrapped      …     SM2 ciphertext C1‖C3‖C2 of the 16-byte content key
    chunks, m ≥ 1 of them, chunk i (from 0):
      length         4   bit 31: final chunk; bits 0-30: ciphertext length (plaintext + 16)
      ciphertext     …   SM4-GCM(content key,
                                 nonce = nonce_prefix ‖ i (4 bytes) ‖ final (1 byte),
                                 aad = SM3(header bytes), plaintext chunk) ‖ tag

Every chunk but the last carries exactly `chunk_size` plaintext bytes; the last carries 0 ..
`chunk_size` and ends the data (nothing may follow it). An empty message is one empty final chunk.

Opening a stream writes each chunk's plaintext once that chunk has been authenticated, so a
truncated or altered envelope raises only after the chunks before the damage were written:
write to a temporary file and keep it only if `open_stream` returns.
"""

from __future__ import annotations

import io
import secrets
import struct
from collections.abc import Iterable
from typing import BinaryIO

from gm import sm4
from gm.errors import (
    DecryptionError,
    EnvelopeFormatError,
    EnvelopeIntegrityError,
    IntegrityError,
    NotARecipient,
)
from gm.sm2 import SM2PrivateKey, SM2PublicKey, encrypt
from gm.sm3 import sm3_digest

MAGIC = b"GMEV"
VERSION = 1
DEFAULT_CHUNK_SIZE = 1 << 18
MAX_CHUNK_SIZE = 1 << 24

_FIXED = struct.Struct(">4sBBI7sH")
_ENTRY = struct.Struct(">32sH")
_RECORD = struct.Struct(">I")
_FINAL = 1 << 31
_KEY_SIZE = 16
_MAX_CHUNKS = 1 << 32


def _nonce(prefix: bytes, index: int, final: bool) -> bytes:
    return prefix + index.to_bytes(4, "big") + (b"\x01" if final else b"\x00")


def _read_exact(src: BinaryIO, size: int) -> bytes:
    """Up to `size` bytes, looping over short reads (pipes, sockets); fewer only at end of stream."""
    data = src.read(size)
    if len(data) == size or not data:
        return data
    parts = [data]
    got = len(data)
    while got < size:
        more = src.read(size - got)
        if not more:
            break
        parts.append(more)
        got += len(more)
    return b"".join(parts)


def _header(recipients: Iterable[SM2PublicKey], key: bytes, chunk_size: int, prefix: bytes) -> bytes:
    unique = {r.key_id(): r for r in recipients}
    if not unique:
        raise ValueError("an envelope needs at least one recipient")
    if len(unique) > 0xFFFF:
        raise ValueError("too many recipients")
    parts = [_FIXED.pack(MAGIC, VERSION, 0, chunk_size, prefix, len(unique))]
    for key_id, public_key in unique.items():
        wrapped = encrypt(public_key, key)
        parts.append(_ENTRY.pack(key_id, len(wrapped)) + wrapped)
    return b"".join(parts)


def seal_stream(src: BinaryIO, dst: BinaryIO, recipients: Iterable[SM2PublicKey], *,
                chunk_size: int = DEFAULT_CHUNK_SIZE) -> int:
    """Encrypt everything readable from `src` into `dst` for `recipients`; returns plaintext bytes."""
    if not 1 <= chunk_size <= MAX_CHUNK_SIZE:
        raise ValueError(f"chunk_size must be 1 .. {MAX_CHUNK_SIZE}")
    key = secrets.token_bytes(_KEY_SIZE)
    prefix = secrets.token_bytes(7)
    header = _header(recipients, key, chunk_size, prefix)
    aad = sm3_digest(header)
    dst.write(header)
    total = 0
    index = 0
    chunk = _read_exact(src, chunk_size)
    while True:
        # Read one chunk ahead: only then do we know whether this one is the last.
        following = _read_exact(src, chunk_size) if len(chunk) == chunk_size else b""
        final = not following
        if index >= _MAX_CHUNKS:
            raise ValueError("input too long for this chunk size")
        record = sm4.encrypt_gcm(key, _nonce(prefix, index, final), chunk, aad)
        dst.write(_RECORD.pack(len(record) | (_FINAL if final else 0)))
        dst.write(record)
        total += len(chunk)
        if final:
            return total
        chunk = following
        index += 1


def _read_header(src: BinaryIO) -> tuple[bytes, int, bytes, list[tuple[bytes, bytes]]]:
    fixed = _read_exact(src, _FIXED.size)
    if fixed[:4] != MAGIC:
        raise EnvelopeFormatError("not a gm envelope (bad magic)")
    if len(fixed) < _FIXED.size:
        raise EnvelopeIntegrityError("envelope truncated inside its header")
    _, version, flags, chunk_size, prefix, count = _FIXED.unpack(fixed)
    if version != VERSION:
        raise EnvelopeFormatError(f"envelope version {version} is not supported (this code reads {VERSION})")
    if flags or not 1 <= chunk_size <= MAX_CHUNK_SIZE or count == 0:
        raise EnvelopeIntegrityError("envelope header is malformed")
    parts = [fixed]
    entries = []
    for _ in range(count):
        head = _read_exact(src, _ENTRY.size)
        if len(head) < _ENTRY.size:
            raise EnvelopeIntegrityError("envelope truncated inside its recipients list")
        key_id, length = _ENTRY.unpack(head)
        wrapped = _read_exact(src, length)
        if len(wrapped) < length:
            raise EnvelopeIntegrityError("envelope truncated inside its recipients list")
        parts += [head, wrapped]
        entries.append((key_id, wrapped))
    return b"".join(parts), chunk_size, prefix, entries


def recipient_ids(src: BinaryIO | bytes) -> list[bytes]:
    """Key identifiers (SM3 of each recipient's `04‖X‖Y`) listed in an envelope's header."""
    stream = io.BytesIO(src) if isinstance(src, bytes | bytearray | memoryview) else src
    return [key_id for key_id, _ in _read_header(stream)[3]]


def _content_key(entries: list[tuple[bytes, bytes]], private_key: SM2PrivateKey) -> bytes:
    mine = private_key.public_key().key_id()
    wrapped_keys = [wrapped for key_id, wrapped in entries if key_id == mine]
    if not wrapped_keys:
        raise NotARecipient("this private key is not among the envelope's recipients")
    for wrapped in wrapped_keys:
        try:
            key = private_key.decrypt(wrapped)
        except DecryptionError:
            continue
        if len(key) == _KEY_SIZE:
            return key
    raise EnvelopeIntegrityError("the content key for this recipient was altered")


def open_stream(src: BinaryIO, dst: BinaryIO, private_key: SM2PrivateKey) -> int:
    """Decrypt an envelope from `src` into `dst`; returns plaintext bytes.

    Raises `EnvelopeIntegrityError` on any alteration, truncation, reordering or trailing data,
    `NotARecipient` if the key is not a recipient, `EnvelopeFormatError` if it is no envelope.
    """
    header, chunk_size, prefix, entries = _read_header(src)
    key = _content_key(entries, private_key)
    aad = sm3_digest(header)
    total = 0
    index = 0
    while True:
        head = _read_exact(src, _RECORD.size)
        if len(head) < _RECORD.size:
            raise EnvelopeIntegrityError(f"envelope truncated before chunk {index} (no final chunk)")
        (word,) = _RECORD.unpack(head)
        final, length = bool(word & _FINAL), word & ~_FINAL
        expected = chunk_size + sm4.GCM_TAG_SIZE
        if length > expected or length < sm4.GCM_TAG_SIZE or (not final and length != expected):
            raise EnvelopeIntegrityError(f"chunk {index} has an impossible length")
        record = _read_exact(src, length)
        if len(record) < length:
            raise EnvelopeIntegrityError(f"envelope truncated inside chunk {index}")
        try:
            plaintext = sm4.decrypt_gcm(key, _nonce(prefix, index, final), record, aad)
        except IntegrityError:
            raise EnvelopeIntegrityError(
                f"chunk {index} failed authentication (altered, reordered or truncated envelope)") from None
        dst.write(plaintext)
        total += len(plaintext)
        if final:
            if src.read(1):
                raise EnvelopeIntegrityError("data after the final chunk")
            return total
        index += 1
        if index >= _MAX_CHUNKS:
            raise EnvelopeIntegrityError("too many chunks")


def seal(plaintext: bytes, recipients: Iterable[SM2PublicKey], *,
         chunk_size: int = DEFAULT_CHUNK_SIZE) -> bytes:
    out = io.BytesIO()
    seal_stream(io.BytesIO(plaintext), out, recipients, chunk_size=chunk_size)
    return out.getvalue()


def open(data: bytes, private_key: SM2PrivateKey) -> bytes:  # shadows the builtin: the spec'd name
    out = io.BytesIO()
    open_stream(io.BytesIO(data), out, private_key)
    return out.getvalue()
