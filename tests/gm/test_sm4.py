"""SM4 known answers (GB/T 32907-2016 Annex A, RFC 8998 A.1), modes, and interop with openssl enc."""

from __future__ import annotations

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gm import sm4
from gm.errors import IntegrityError

from .conftest import run

KEY = bytes.fromhex("0123456789abcdeffedcba9876543210")


def test_single_block_matches_the_standard() -> None:
    # GB/T 32907-2016 Annex A.1: plaintext = key.
    ciphertext = sm4.encrypt_ecb(KEY, KEY, padding=False)
    assert ciphertext.hex() == "681edf34d206965e86b3e94f536e4246"
    assert sm4.decrypt_ecb(KEY, ciphertext, padding=False) == KEY


def test_one_million_iterations_match_the_standard() -> None:
    # GB/T 32907-2016 Annex A.2: encrypt the block 1,000,000 times with the same key.
    encryptor = sm4.ecb_encryptor(KEY)
    block = bytearray(KEY)
    out = bytearray(16 + 15)  # update_into wants room for a block minus one
    for _ in range(1_000_000):
        encryptor.update_into(block, out)
        block[:] = out[:16]
    assert bytes(block).hex() == "595298c7c6fd271f0402f804c33d3f66"


def test_gcm_matches_rfc_8998() -> None:
    nonce = bytes.fromhex("00001234567800000000abcd")
    aad = bytes.fromhex("feedfacedeadbeeffeedfacedeadbeefabaddad2")
    plaintext = bytes.fromhex("".join(c * 16 for c in "abcdefea"))
    expected = bytes.fromhex(
        "17f399f08c67d5ee19d0dc9969c4bb7d5fd46fd3756489069157b282bb200735"
        "d82710ca5c22f0ccfa7cbf93d496ac15a56834cbcf98c397b4024a2691233b8d"
        "83de3541e4c2b58177e065a9bf7b62ec")
    assert sm4.encrypt_gcm(KEY, nonce, plaintext, aad) == expected
    assert sm4.decrypt_gcm(KEY, nonce, expected, aad) == plaintext


@given(st.binary(max_size=300), st.binary(max_size=40), st.data())
def test_gcm_rejects_any_flipped_bit(plaintext: bytes, aad: bytes, data: st.DataObject) -> None:
    nonce = os.urandom(12)
    sealed = sm4.encrypt_gcm(KEY, nonce, plaintext, aad)
    bit = data.draw(st.integers(0, len(sealed) * 8 - 1))
    damaged = bytearray(sealed)
    damaged[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(IntegrityError):
        sm4.decrypt_gcm(KEY, nonce, bytes(damaged), aad)
    with pytest.raises(IntegrityError):
        sm4.decrypt_gcm(KEY, nonce, sealed, aad + b"x")
    assert sm4.decrypt_gcm(KEY, nonce, sealed, aad) == plaintext


@given(st.binary(max_size=200))
def test_ecb_cbc_ctr_round_trip(plaintext: bytes) -> None:
    iv = os.urandom(16)
    assert sm4.decrypt_ecb(KEY, sm4.encrypt_ecb(KEY, plaintext)) == plaintext
    assert sm4.decrypt_cbc(KEY, iv, sm4.encrypt_cbc(KEY, iv, plaintext)) == plaintext
    assert sm4.decrypt_ctr(KEY, iv, sm4.encrypt_ctr(KEY, iv, plaintext)) == plaintext


def test_bad_sizes_are_refused() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        sm4.encrypt_gcm(b"short", bytes(12), b"x")
    with pytest.raises(ValueError, match="12 bytes"):
        sm4.encrypt_gcm(KEY, bytes(16), b"x")
    with pytest.raises(ValueError, match="blocks"):
        sm4.encrypt_ecb(KEY, b"abc", padding=False)
    with pytest.raises(IntegrityError):
        sm4.decrypt_gcm(KEY, bytes(12), b"tiny")


@pytest.mark.parametrize(("mode", "padded"), [("sm4-cbc", True), ("sm4-ctr", False), ("sm4-ecb", True)])
def test_modes_agree_with_openssl_enc(openssl_cli: str, mode: str, padded: bool) -> None:
    plaintext = os.urandom(1000)
    iv = os.urandom(16)
    args = [openssl_cli, "enc", f"-{mode}", "-K", KEY.hex(), "-nosalt"]
    if mode != "sm4-ecb":
        args += ["-iv", iv.hex()]
    theirs = run(*args, stdin=plaintext)
    ours = {"sm4-cbc": lambda: sm4.encrypt_cbc(KEY, iv, plaintext),
            "sm4-ctr": lambda: sm4.encrypt_ctr(KEY, iv, plaintext),
            "sm4-ecb": lambda: sm4.encrypt_ecb(KEY, plaintext)}[mode]()
    assert ours == theirs
    assert run(*args, "-d", stdin=ours) == plaintext
