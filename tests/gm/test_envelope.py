"""Digital envelopes: round trips, the documented format, and refusal of every kind of tampering."""

from __future__ import annotations

import io
import os
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gm import envelope, sm2
from gm.errors import (
    EnvelopeError,
    EnvelopeFormatError,
    EnvelopeIntegrityError,
    GMError,
    IntegrityError,
    NotARecipient,
)

from .conftest import examples


@pytest.fixture(scope="module")
def alice() -> sm2.SM2PrivateKey:
    return sm2.generate_private_key()


@pytest.fixture(scope="module")
def bob() -> sm2.SM2PrivateKey:
    return sm2.generate_private_key()


def split(sealed: bytes) -> tuple[bytes, list[bytes]]:
    """(header, [record, …]) where each record keeps its 4-byte length word."""
    stream = io.BytesIO(sealed)
    header = envelope._read_header(stream)[0]
    records = []
    while head := stream.read(4):
        (word,) = struct.unpack(">I", head)
        records.append(head + stream.read(word & 0x7FFFFFFF))
    return header, records


# --- round trips and format -----------------------------------------------------------------

@pytest.mark.parametrize("size", [0, 1, 63, 64, 65, 64 * 3, 1000])
def test_seal_and_open_round_trip_at_chunk_boundaries(sm2_backend: str, alice: sm2.SM2PrivateKey,
                                                       size: int) -> None:
    plaintext = os.urandom(size)
    sealed = envelope.seal(plaintext, [alice.public_key()], chunk_size=64)
    assert envelope.open(sealed, alice) == plaintext
    assert len(split(sealed)[1]) == max(1, -(-size // 64))


def test_every_recipient_opens_and_nobody_else(sm2_backend: str, alice: sm2.SM2PrivateKey,
                                               bob: sm2.SM2PrivateKey) -> None:
    sealed = envelope.seal(b"board minutes", [alice.public_key(), bob.public_key(), alice.public_key()])
    assert envelope.recipient_ids(sealed) == [alice.public_key().key_id(), bob.public_key().key_id()]
    assert envelope.open(sealed, alice) == b"board minutes"
    assert envelope.open(sealed, bob) == b"board minutes"
    with pytest.raises(NotARecipient):
        envelope.open(sealed, sm2.generate_private_key())


def test_header_follows_the_documented_layout(alice: sm2.SM2PrivateKey) -> None:
    sealed = envelope.seal(b"x" * 10, [alice.public_key()], chunk_size=4096)
    magic, version, flags, chunk_size, _prefix, count = struct.unpack(">4sBBI7sH", sealed[:19])
    assert (magic, version, flags, chunk_size, count) == (b"GMEV", 1, 0, 4096, 1)
    key_id, length = struct.unpack(">32sH", sealed[19:53])
    assert key_id == alice.public_key().key_id() and length == 65 + 32 + 16
    assert sealed[53] == 0x04  # the wrapped key is a raw C1‖C3‖C2 SM2 ciphertext
    (word,) = struct.unpack(">I", sealed[53 + length:57 + length])
    assert word == (1 << 31) | (10 + 16)  # one final chunk: 10 bytes + tag
    assert len(sealed) == 57 + length + 26


def test_envelopes_of_equal_input_differ(alice: sm2.SM2PrivateKey) -> None:
    assert envelope.seal(b"same", [alice.public_key()]) != envelope.seal(b"same", [alice.public_key()])


def test_bad_arguments_are_refused(alice: sm2.SM2PrivateKey) -> None:
    with pytest.raises(ValueError, match="recipient"):
        envelope.seal(b"x", [])
    with pytest.raises(ValueError, match="chunk_size"):
        envelope.seal(b"x", [alice.public_key()], chunk_size=0)


def test_not_an_envelope_or_a_future_version_is_a_format_error(alice: sm2.SM2PrivateKey) -> None:
    for junk in (b"", b"GM", b"PK\x03\x04" + bytes(40)):
        with pytest.raises(EnvelopeFormatError):
            envelope.open(junk, alice)
    sealed = bytearray(envelope.seal(b"x", [alice.public_key()]))
    sealed[4] = 2
    with pytest.raises(EnvelopeFormatError, match="version 2"):
        envelope.open(bytes(sealed), alice)


# --- tampering ------------------------------------------------------------------------------

def test_every_altered_byte_is_detected(sm2_backend: str, alice: sm2.SM2PrivateKey,
                                        bob: sm2.SM2PrivateKey) -> None:
    sealed = envelope.seal(os.urandom(40), [alice.public_key(), bob.public_key()], chunk_size=16)
    positions = range(len(sealed)) if sm2_backend == "openssl" else range(0, len(sealed), 17)
    for index in positions:
        damaged = bytearray(sealed)
        damaged[index] ^= 0x80
        with pytest.raises(EnvelopeError):
            envelope.open(bytes(damaged), alice)


def test_every_truncation_is_detected(sm2_backend: str, alice: sm2.SM2PrivateKey) -> None:
    sealed = envelope.seal(os.urandom(40), [alice.public_key()], chunk_size=16)
    lengths = range(len(sealed)) if sm2_backend == "openssl" else range(0, len(sealed), 13)
    for length in lengths:
        with pytest.raises(EnvelopeError):
            envelope.open(sealed[:length], alice)


def test_reordered_dropped_duplicated_or_extra_chunks_are_detected(alice: sm2.SM2PrivateKey) -> None:
    header, records = split(envelope.seal(os.urandom(16 * 3 + 5), [alice.public_key()], chunk_size=16))
    assert len(records) == 4
    forgeries = {
        "swap": [records[1], records[0], records[2], records[3]],
        "drop middle": [records[0], records[2], records[3]],
        "drop final": records[:3],
        "duplicate": [records[0], records[0], records[1], records[2], records[3]],
        "final twice": records + records[3:],
    }
    for name, chunks in forgeries.items():
        with pytest.raises(EnvelopeIntegrityError):
            envelope.open(header + b"".join(chunks), alice)
            pytest.fail(name)
    with pytest.raises(EnvelopeIntegrityError, match="after the final chunk"):
        envelope.open(header + b"".join(records) + b"\x00", alice)


def test_a_chunk_relabelled_final_is_detected(alice: sm2.SM2PrivateKey) -> None:
    header, records = split(envelope.seal(os.urandom(32), [alice.public_key()], chunk_size=16))
    first = bytearray(records[0])
    first[0] |= 0x80  # claim the first chunk is the last: a clean truncation, if it were not bound
    with pytest.raises(EnvelopeIntegrityError):
        envelope.open(header + bytes(first), alice)


def test_a_header_from_another_envelope_is_detected(alice: sm2.SM2PrivateKey) -> None:
    _, records_a = split(envelope.seal(b"A" * 20, [alice.public_key()], chunk_size=16))
    header_b, _ = split(envelope.seal(b"B" * 20, [alice.public_key()], chunk_size=16))
    with pytest.raises(EnvelopeError):
        envelope.open(header_b + b"".join(records_a), alice)


def test_errors_are_gm_errors_and_integrity_errors() -> None:
    assert issubclass(EnvelopeIntegrityError, IntegrityError)
    assert issubclass(EnvelopeIntegrityError, EnvelopeError)
    assert issubclass(EnvelopeError, GMError)
    assert issubclass(EnvelopeFormatError, ValueError)


def test_round_trip_and_any_flipped_bit_fails(sm2_backend: str, alice: sm2.SM2PrivateKey) -> None:
    recipients = [alice.public_key()]

    @settings(max_examples=examples(sm2_backend, 40), deadline=None)
    @given(plaintext=st.binary(max_size=600), chunk_size=st.integers(1, 256),
           position=st.integers(0, 1 << 20))
    def check(plaintext: bytes, chunk_size: int, position: int) -> None:
        sealed = envelope.seal(plaintext, recipients, chunk_size=chunk_size)
        assert envelope.open(sealed, alice) == plaintext
        bit = position % (len(sealed) * 8)
        damaged = bytearray(sealed)
        damaged[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(EnvelopeError):
            envelope.open(bytes(damaged), alice)

    check()


# --- streaming ------------------------------------------------------------------------------

class Generated(io.RawIOBase):
    """`size` pseudo-random bytes made on demand; records the largest read it was asked for."""

    def __init__(self, size: int) -> None:
        self.left = size
        self.largest_read = 0
        self._block = os.urandom(1 << 16)

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        self.largest_read = max(self.largest_read, n)
        n = min(n if n >= 0 else self.left, self.left, len(self._block))  # short reads, like a pipe
        self.left -= n
        return self._block[:n]


class Digesting(io.RawIOBase):
    """A sink that keeps only a running SM3 and a byte count."""

    def __init__(self) -> None:
        from gm import sm3

        self.hash = sm3.new()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.hash.update(data)
        self.size += len(data)
        return len(data)


def test_streams_are_processed_chunk_by_chunk(alice: sm2.SM2PrivateKey, tmp_path) -> None:
    size = 24 * 1024 * 1024 + 123
    source = Generated(size)
    sealed_path = tmp_path / "big.gmev"
    with open(sealed_path, "wb") as sealed:
        assert envelope.seal_stream(source, sealed, [alice.public_key()], chunk_size=1 << 20) == size
    assert source.largest_read <= 1 << 20

    class Watched(io.FileIO):
        largest_read = 0

        def read(self, n: int = -1) -> bytes:  # type: ignore[override]
            Watched.largest_read = max(Watched.largest_read, n)
            return super().read(n)

    sink = Digesting()
    with Watched(sealed_path, "rb") as src:
        assert envelope.open_stream(src, sink, alice) == size
    assert sink.size == size
    assert 0 < Watched.largest_read <= (1 << 20) + 16
