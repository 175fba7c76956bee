"""SM3 known answers (GB/T 32905-2016 Annex A) and streaming."""

from __future__ import annotations

import io

from hypothesis import given
from hypothesis import strategies as st

from gm import sm3

# GB/T 32905-2016 Annex A.1 and A.2.
ABC = "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
ABCD_16 = "debe9ff92275b8a138604889c18e5a4d6fdb70e5387e5765293dcba39c0c5732"


def test_sm3_of_abc_matches_the_standard() -> None:
    assert sm3.sm3_hex(b"abc") == ABC
    assert sm3.sm3_digest(b"abc") == bytes.fromhex(ABC)


def test_sm3_of_abcd_sixteen_times_matches_the_standard() -> None:
    assert sm3.sm3_hex(b"abcd" * 16) == ABCD_16


def test_sm3_is_available_and_incremental() -> None:
    assert sm3.available()
    h = sm3.new(b"ab")
    h.update(b"c")
    assert h.hexdigest() == ABC
    assert len(h.digest()) == sm3.DIGEST_SIZE


class _Trickle(io.RawIOBase):
    """A stream that hands out at most 7 bytes per read, like a slow pipe."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        chunk = self._data.read(min(7, len(buffer)))
        buffer[:len(chunk)] = chunk
        return len(chunk)


@given(st.binary(max_size=5000), st.integers(min_value=1, max_value=4096))
def test_stream_hash_equals_whole_hash_for_any_chunking(data: bytes, chunk_size: int) -> None:
    assert sm3.sm3_stream(io.BytesIO(data), chunk_size) == sm3.sm3_digest(data)
    assert sm3.sm3_stream(_Trickle(data), chunk_size) == sm3.sm3_digest(data)


def test_file_hash_reads_in_chunks(tmp_path) -> None:
    path = tmp_path / "big.bin"
    data = bytes(range(256)) * 10_000  # 2.5 MB: several 1 MiB reads
    path.write_bytes(data)
    assert sm3.sm3_file(path) == sm3.sm3_digest(data)
