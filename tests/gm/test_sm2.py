"""SM2: known answers from the standard, encodings, and properties, on every backend."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import gm
from gm import _backend, _curve, sm2
from gm.errors import DecryptionError, InvalidKey, InvalidSignature

from .conftest import examples

# GB/T 32918.5-2017 Annex A (= GM/T 0003.5-2012 Annex A) on the recommended curve, user ID
# 1234567812345678. The same values are in OpenSSL's test/sm2_internal_test.c.
KAT_D = 0x3945208F7B2144B13F36E38AC6D39F95889393692860B51A42FB81EF4DF7C5B8
KAT_PUBLIC = ("04"
              "09f9df311e5421a150dd7d161e4bc5c672179fad1833fc076bb08ff356f35020"
              "ccea490ce26775a52dc6ea718cc1aa600aed05fbf35e084a6632f6072da9ad13")
KAT_K = 0x59276E27D506861A16680F3AD9C02DCCEF3CC1FA3CDBE4CE6D54B80DEAC1BC21
KAT_SIGN_MESSAGE = b"message digest"
KAT_Z = "b2e14c5c79c6df5b85f4fe7ed8db7a262b9da7e07ccb0ea9f4747b8ccda8a4f3"
KAT_E = 0xF0B43E94BA45ACCAACE692ED534382EB17E6AB5A19CE7B31F4486FDFC0D28640
KAT_R = 0xF5A03B0648D2C4630EEAC513E1BB81A15944DA3827D5B74143AC7EACEEE720B3
KAT_S = 0xB1B6AA29DF212FD8763182BC0D421CA1BB9038FD1F7F42D4840B69C485BBC1AA

# GB/T 32918.5-2017 Annex C (= GM/T 0003.5-2012 Annex C): same key and k, "encryption standard".
KAT_ENC_MESSAGE = b"encryption standard"
KAT_C1 = ("04"
          "04ebfc718e8d1798620432268e77feb6415e2ede0e073c0f4f640ecd2e149a73"
          "e858f9d81e5430a57b36daab8f950a3c64e6ee6a63094d99283aff767e124df0")
KAT_C3 = "59983c18f809e262923c53aec295d30383b54e39d609d160afcb1908d0bd8766"
KAT_C2 = "21886ca989ca9c7d58087307ca93092d651efa"
# The same ciphertext in GM/T 0009 DER, as OpenSSL's sm2_internal_test.c spells it.
KAT_ENC_DER = ("307c022004ebfc718e8d1798620432268e77feb6415e2ede0e073c0f4f640ecd2e149a73"
               "022100e858f9d81e5430a57b36daab8f950a3c64e6ee6a63094d99283aff767e124df0"
               "042059983c18f809e262923c53aec295d30383b54e39d609d160afcb1908d0bd8766"
               "041321886ca989ca9c7d58087307ca93092d651efa")


@pytest.fixture(scope="module")
def key() -> sm2.SM2PrivateKey:
    return sm2.generate_private_key()


# --- known answers --------------------------------------------------------------------------

def test_public_key_z_and_e_of_the_standard_example(sm2_backend: str) -> None:
    private = sm2.SM2PrivateKey.from_int(KAT_D)
    point = private.public_key().to_bytes()
    assert private.public_key().to_hex() == KAT_PUBLIC
    assert _curve.z_digest(point, sm2.DEFAULT_UID).hex() == KAT_Z
    assert _curve.message_digest(point, sm2.DEFAULT_UID, KAT_SIGN_MESSAGE) == KAT_E


def test_fixed_k_signature_equals_the_published_r_and_s() -> None:
    # Only the pure-Python path accepts an explicit k; libcrypto always draws its own.
    backend = _backend.load("gmssl")
    handle = backend.load_private(KAT_D, bytes.fromhex(KAT_PUBLIC))
    assert backend.sign(handle, KAT_SIGN_MESSAGE, sm2.DEFAULT_UID, k=KAT_K) == (KAT_R, KAT_S)


def test_every_backend_verifies_the_published_signature(sm2_backend: str) -> None:
    public = sm2.SM2PublicKey.from_hex(KAT_PUBLIC)
    raw = KAT_R.to_bytes(32, "big") + KAT_S.to_bytes(32, "big")
    assert public.verify(KAT_SIGN_MESSAGE, raw)
    assert public.verify(KAT_SIGN_MESSAGE, sm2.signature_to_der(raw))
    assert not public.verify(b"message digesT", raw)
    assert not public.verify(KAT_SIGN_MESSAGE, raw, uid=b"ALICE123@YAHOO.COM")


def test_fixed_k_encryption_equals_the_published_c1_c3_c2() -> None:
    backend = _backend.load("gmssl")
    ciphertext = backend.encrypt(bytes.fromhex(KAT_PUBLIC), KAT_ENC_MESSAGE, k=KAT_K)
    assert ciphertext.hex() == KAT_C1 + KAT_C3 + KAT_C2
    assert sm2.ciphertext_to_der(ciphertext).hex() == KAT_ENC_DER


def test_every_backend_decrypts_the_published_ciphertext(sm2_backend: str) -> None:
    private = sm2.SM2PrivateKey.from_int(KAT_D)
    c1c3c2 = bytes.fromhex(KAT_C1 + KAT_C3 + KAT_C2)
    c1c2c3 = bytes.fromhex(KAT_C1 + KAT_C2 + KAT_C3)
    assert private.decrypt(c1c3c2) == KAT_ENC_MESSAGE
    assert private.decrypt(c1c2c3, order="C1C2C3") == KAT_ENC_MESSAGE
    assert private.decrypt(bytes.fromhex(KAT_ENC_DER)) == KAT_ENC_MESSAGE
    assert sm2.ciphertext_from_der(bytes.fromhex(KAT_ENC_DER), order="C1C2C3") == c1c2c3


# --- keys and encodings ---------------------------------------------------------------------

def test_backend_name_says_which_implementation_runs(sm2_backend: str) -> None:
    pattern = r"openssl \d+\.\d+\.\d+ \(libcrypto\)" if sm2_backend == "openssl" else r"gmssl \(pure Python\)"
    assert re.fullmatch(pattern, gm.backend_name())


def test_generated_keys_round_trip_through_every_encoding(sm2_backend: str) -> None:
    private = sm2.generate_private_key()
    public = private.public_key()
    assert re.fullmatch(r"04[0-9a-f]{128}", public.to_hex())
    assert sm2.SM2PublicKey.from_hex(public.to_hex().upper()) == public
    assert sm2.SM2PublicKey.from_pem(public.to_pem()) == public
    assert sm2.SM2PublicKey.from_der(public.to_der()) == public
    assert public.to_pem().startswith(b"-----BEGIN PUBLIC KEY-----\n")
    assert sm2.SM2PrivateKey.from_pem(private.to_pem()) == private
    assert sm2.SM2PrivateKey.from_der(private.to_der()) == private
    assert sm2.SM2PrivateKey.from_int(private.to_int()).public_key() == public
    assert private.to_pem().startswith(b"-----BEGIN PRIVATE KEY-----\n")
    assert 1 <= private.to_int() <= _curve.N - 2


def test_private_key_repr_does_not_reveal_the_scalar(key: sm2.SM2PrivateKey) -> None:
    assert f"{key.to_int():x}" not in repr(key)


def test_keys_off_the_curve_or_out_of_range_are_refused() -> None:
    bad_point = "04" + "00" * 63 + "01" + "00" * 31 + "01"
    with pytest.raises(InvalidKey):
        sm2.SM2PublicKey.from_hex(bad_point)
    for d in (0, _curve.N - 1, _curve.N):
        with pytest.raises(InvalidKey):
            sm2.SM2PrivateKey.from_int(d)


def test_pkcs8_whose_public_key_belongs_to_another_key_is_refused(key: sm2.SM2PrivateKey) -> None:
    from gm import _asn1

    other = sm2.generate_private_key().public_key().to_bytes()
    with pytest.raises(InvalidKey, match="does not belong"):
        sm2.SM2PrivateKey.from_der(_asn1.pkcs8(key.to_int(), other))


def test_load_public_key_accepts_hex_pem_and_certificate(key: sm2.SM2PrivateKey) -> None:
    from datetime import UTC, datetime, timedelta

    from gm import cert

    public = key.public_key()
    now = datetime.now(UTC)
    certificate = cert.make_certificate(key, key, {"CN": "k"}, 7, now, now + timedelta(days=1))
    assert sm2.load_public_key(public.to_hex()) == public
    assert sm2.load_public_key(f"  {public.to_hex().upper()}\n") == public
    assert sm2.load_public_key(public.to_pem()) == public
    assert sm2.load_public_key(public.to_pem().decode()) == public
    assert sm2.load_public_key(certificate) == public
    assert sm2.load_public_key(certificate.decode()) == public


@pytest.mark.parametrize("junk", [
    "", "04", "zz" * 65, "04" + "ab" * 64 + "0", "ab" * 64,  # hex of the wrong shape
    b"\xff\xfe binary", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----",
    "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----",
])
def test_load_public_key_refuses_anything_else(junk: str | bytes) -> None:
    with pytest.raises(ValueError):
        sm2.load_public_key(junk)


def test_load_public_key_refuses_a_private_key(key: sm2.SM2PrivateKey) -> None:
    with pytest.raises(ValueError):
        sm2.load_public_key(key.to_pem())


# --- signatures -----------------------------------------------------------------------------

def test_signatures_are_der_and_convert_to_raw_and_back(sm2_backend: str, key: sm2.SM2PrivateKey) -> None:
    signature = key.sign(b"payload")
    assert signature[0] == 0x30 and 8 <= len(signature) <= 72
    raw = sm2.signature_to_raw(signature)
    assert len(raw) == 64
    assert sm2.signature_to_der(raw) == signature
    assert sm2.signature_to_raw(raw) == raw
    assert key.public_key().verify(b"payload", signature)
    assert key.public_key().verify(b"payload", raw)
    assert len(key.sign(b"payload", encoding="raw")) == 64


def test_signatures_are_randomised(sm2_backend: str, key: sm2.SM2PrivateKey) -> None:
    assert key.sign(b"same") != key.sign(b"same")


def test_user_id_is_part_of_the_signature(sm2_backend: str, key: sm2.SM2PrivateKey) -> None:
    signature = key.sign(b"payload", uid=b"alice@example.cn")
    assert key.public_key().verify(b"payload", signature, uid=b"alice@example.cn")
    assert key.public_key().verify(b"payload", signature, uid="alice@example.cn")
    assert not key.public_key().verify(b"payload", signature)
    assert key.public_key().verify(b"", key.sign(b"", uid=b""), uid=b"")


def test_signature_converters_refuse_garbage() -> None:
    for junk in (b"", b"\x30\x00", bytes(64), b"\x30\x06\x02\x01\x00\x02\x01\x01"):
        with pytest.raises(InvalidSignature):
            sm2.signature_to_raw(junk)
        with pytest.raises(ValueError):
            sm2.signature_to_der(junk)


def test_verify_returns_false_for_out_of_range_values(sm2_backend: str, key: sm2.SM2PrivateKey) -> None:
    public = key.public_key()
    r, s = sm2.signature_to_raw(key.sign(b"m"))[:32], sm2.signature_to_raw(key.sign(b"m"))[32:]
    assert not public.verify(b"m", bytes(32) + s)
    assert not public.verify(b"m", r + _curve.N.to_bytes(32, "big"))
    assert not public.verify(b"m", b"\xff" * 64)
    assert not public.verify(b"m", "not bytes")  # type: ignore[arg-type]
    assert not public.verify(b"m", key.sign(b"m"), uid=b"x" * 10_000)


def test_verify_never_raises_on_garbage(sm2_backend: str, key: sm2.SM2PrivateKey) -> None:
    public = key.public_key()

    @settings(max_examples=examples(sm2_backend, 200), deadline=None)
    @given(st.one_of(st.binary(max_size=100), st.binary(min_size=64, max_size=64),
                     st.builds(lambda b: b"\x30" + bytes([len(b)]) + b, st.binary(max_size=80))))
    def check(junk: bytes) -> None:
        assert public.verify(b"message", junk) is False

    check()


def test_sign_verify_round_trip_and_any_flipped_bit_fails(sm2_backend: str, key: sm2.SM2PrivateKey) -> None:
    public = key.public_key()

    @settings(max_examples=examples(sm2_backend, 60), deadline=None)
    @given(message=st.binary(max_size=300), uid=st.binary(max_size=40), raw=st.booleans(), data=st.data())
    def check(message: bytes, uid: bytes, raw: bool, data: st.DataObject) -> None:
        signature = key.sign(message, uid, encoding="raw" if raw else "der")
        assert public.verify(message, signature, uid)
        # Signature lengths vary run to run (DER, random k): draw a position, then reduce it.
        bit = data.draw(st.integers(0, 1 << 16), label="signature bit") % (len(signature) * 8)
        damaged = bytearray(signature)
        damaged[bit // 8] ^= 1 << (bit % 8)
        assert not public.verify(message, bytes(damaged), uid)
        if message:
            bit = data.draw(st.integers(0, len(message) * 8 - 1), label="message bit")
            altered = bytearray(message)
            altered[bit // 8] ^= 1 << (bit % 8)
            assert not public.verify(bytes(altered), signature, uid)
        else:
            assert not public.verify(b"\x00", signature, uid)

    check()


def test_backends_verify_each_others_signatures_and_ciphertexts() -> None:
    available = gm.available_backends()
    if len(available) < 2:
        pytest.skip("needs both backends")
    private = sm2.generate_private_key()
    public = private.public_key()
    for signer in available:
        with gm.use_backend(signer):
            signature = private.sign(b"cross-check")
            ciphertext = sm2.encrypt(public, b"cross-check")
        for verifier in available:
            with gm.use_backend(verifier):
                assert public.verify(b"cross-check", signature), (signer, verifier)
                assert private.decrypt(ciphertext) == b"cross-check", (signer, verifier)


# --- encryption -----------------------------------------------------------------------------

def test_encryption_round_trips_in_both_orders(sm2_backend: str, key: sm2.SM2PrivateKey) -> None:
    public = key.public_key()
    for size in (1, 31, 32, 33, 1000):
        plaintext = bytes(range(256)) * 4
        plaintext = plaintext[:size]
        c1c3c2 = sm2.encrypt(public, plaintext)
        assert len(c1c3c2) == 65 + 32 + size and c1c3c2[0] == 4
        assert key.decrypt(c1c3c2) == plaintext
        assert sm2.decrypt(key, c1c3c2) == plaintext
        c1c2c3 = public.encrypt(plaintext, order="C1C2C3")
        assert key.decrypt(c1c2c3, order="C1C2C3") == plaintext
        assert key.decrypt(sm2.ciphertext_to_der(c1c2c3, order="C1C2C3")) == plaintext


def test_any_altered_ciphertext_byte_is_rejected(sm2_backend: str, key: sm2.SM2PrivateKey) -> None:
    ciphertext = sm2.encrypt(key.public_key(), b"attack at dawn")
    positions = range(len(ciphertext)) if sm2_backend == "openssl" else (0, 1, 40, 64, 65, 96, 97, 110)
    for index in positions:
        damaged = bytearray(ciphertext)
        damaged[index] ^= 0x01
        with pytest.raises(DecryptionError):
            key.decrypt(bytes(damaged))


def test_decrypting_with_another_key_or_garbage_fails(sm2_backend: str, key: sm2.SM2PrivateKey) -> None:
    ciphertext = sm2.encrypt(key.public_key(), b"secret")
    with pytest.raises(DecryptionError):
        sm2.generate_private_key().decrypt(ciphertext)
    for junk in (b"", b"\x04" * 97, b"\x30\x03\x02\x01\x01", ciphertext[:97]):
        with pytest.raises(DecryptionError):
            key.decrypt(junk)


def test_encryption_refuses_empty_messages_and_unknown_orders(key: sm2.SM2PrivateKey) -> None:
    with pytest.raises(ValueError, match="empty"):
        sm2.encrypt(key.public_key(), b"")
    with pytest.raises(ValueError, match="order"):
        sm2.encrypt(key.public_key(), b"x", order="C2C1C3")  # type: ignore[arg-type]


def test_keys_are_shared_safely_between_threads(sm2_backend: str) -> None:
    from concurrent.futures import ThreadPoolExecutor

    keys = [sm2.generate_private_key() for _ in range(4)]
    rounds = 25 if sm2_backend == "openssl" else 2

    def work(index: int) -> bool:
        key = keys[index % 4]
        message = index.to_bytes(4, "big")
        signature = key.sign(message)
        return (key.public_key().verify(message, signature)
                and not keys[(index + 1) % 4].public_key().verify(message, signature)
                and key.decrypt(sm2.encrypt(key.public_key(), message)) == message)

    with ThreadPoolExecutor(max_workers=4) as pool:
        assert all(pool.map(work, range(rounds * 4)))
