"""SM2 against independent implementations, both ways: the openssl command and gmssl's CryptSM2."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from gm import sm2

from .conftest import run

DISTID = "distid:1234567812345678"


@pytest.fixture
def openssl_key(openssl_cli: str, tmp_path: Path) -> tuple[Path, Path]:
    """An SM2 key pair made by openssl: (private PEM path, public PEM path)."""
    private, public = tmp_path / "key.pem", tmp_path / "pub.pem"
    run(openssl_cli, "genpkey", "-algorithm", "SM2", "-out", private)
    run(openssl_cli, "pkey", "-in", private, "-pubout", "-out", public)
    return private, public


# --- openssl command line -------------------------------------------------------------------

def test_keys_are_byte_identical_to_openssls(sm2_backend: str, openssl_cli: str,
                                              openssl_key: tuple[Path, Path], tmp_path: Path) -> None:
    private_pem, public_pem = openssl_key
    private = sm2.SM2PrivateKey.from_pem(private_pem.read_bytes())
    assert private.to_pem() == private_pem.read_bytes()  # PKCS#8
    assert private.public_key().to_pem() == public_pem.read_bytes()  # SubjectPublicKeyInfo
    assert sm2.load_public_key(public_pem.read_text()) == private.public_key()
    ours = tmp_path / "ours.pem"
    ours.write_bytes(sm2.generate_private_key().to_pem())
    assert b"ASN1 OID: SM2" in run(openssl_cli, "pkey", "-in", ours, "-text", "-noout")


def test_sec1_private_keys_as_openssl_writes_them_are_read(sm2_backend: str, openssl_cli: str,
                                                           openssl_key: tuple[Path, Path]) -> None:
    from gm import _pem

    private_pem, _ = openssl_key
    sec1 = run(openssl_cli, "pkey", "-in", private_pem, "-outform", "DER")  # ECPrivateKey with [0] curve
    expected = sm2.SM2PrivateKey.from_pem(private_pem.read_bytes())
    assert sec1[2:5] == b"\x02\x01\x01"  # version 1: SEC 1, not PKCS#8
    assert sm2.load_private_key(sec1) == expected
    assert sm2.load_private_key(_pem.encode("EC PRIVATE KEY", sec1)) == expected


@pytest.mark.parametrize("uid", ["1234567812345678", "alice@example.cn"])
def test_openssl_signatures_verify_with_gm(sm2_backend: str, openssl_cli: str,
                                           openssl_key: tuple[Path, Path], tmp_path: Path, uid: str) -> None:
    private_pem, public_pem = openssl_key
    message = tmp_path / "message.bin"
    message.write_bytes(secrets.token_bytes(1000))
    signature = run(openssl_cli, "pkeyutl", "-sign", "-rawin", "-digest", "sm3", "-inkey", private_pem,
                    "-pkeyopt", f"distid:{uid}", "-in", message)
    public = sm2.SM2PublicKey.from_pem(public_pem.read_bytes())
    assert public.verify(message.read_bytes(), signature, uid=uid.encode())
    assert public.verify(message.read_bytes(), sm2.signature_to_raw(signature), uid=uid.encode())
    assert not public.verify(message.read_bytes() + b"!", signature, uid=uid.encode())
    assert not public.verify(message.read_bytes(), signature, uid=b"someone else")


@pytest.mark.parametrize("uid", ["1234567812345678", "alice@example.cn"])
def test_gm_signatures_verify_with_openssl(sm2_backend: str, openssl_cli: str,
                                           openssl_key: tuple[Path, Path], tmp_path: Path, uid: str) -> None:
    private_pem, public_pem = openssl_key
    key = sm2.SM2PrivateKey.from_pem(private_pem.read_bytes())
    message, signature = tmp_path / "message.bin", tmp_path / "signature.der"
    message.write_bytes(secrets.token_bytes(1000))
    signature.write_bytes(key.sign(message.read_bytes(), uid=uid.encode()))
    out = run(openssl_cli, "pkeyutl", "-verify", "-rawin", "-digest", "sm3", "-pubin", "-inkey", public_pem,
              "-pkeyopt", f"distid:{uid}", "-in", message, "-sigfile", signature)
    assert b"Signature Verified Successfully" in out
    # and `openssl dgst`, the other common invocation
    out = run(openssl_cli, "dgst", "-sm3", "-verify", public_pem, "-sigopt", f"distid:{uid}",
              "-signature", signature, message)
    assert b"Verified OK" in out


def test_openssl_ciphertexts_decrypt_with_gm(sm2_backend: str, openssl_cli: str,
                                             openssl_key: tuple[Path, Path], tmp_path: Path) -> None:
    private_pem, public_pem = openssl_key
    plaintext = secrets.token_bytes(200)
    der = run(openssl_cli, "pkeyutl", "-encrypt", "-pubin", "-inkey", public_pem, stdin=plaintext)
    key = sm2.SM2PrivateKey.from_pem(private_pem.read_bytes())
    assert key.decrypt(der) == plaintext  # GM/T 0009 DER, as openssl writes it
    assert key.decrypt(sm2.ciphertext_from_der(der)) == plaintext


def test_gm_ciphertexts_decrypt_with_openssl(sm2_backend: str, openssl_cli: str,
                                             openssl_key: tuple[Path, Path]) -> None:
    private_pem, public_pem = openssl_key
    plaintext = secrets.token_bytes(200)
    raw = sm2.encrypt(sm2.SM2PublicKey.from_pem(public_pem.read_bytes()), plaintext)
    out = run(openssl_cli, "pkeyutl", "-decrypt", "-inkey", private_pem, stdin=sm2.ciphertext_to_der(raw))
    assert out == plaintext


# --- gmssl's own API (CryptSM2), with nonces from secrets -----------------------------------

@pytest.fixture
def gmssl_pair() -> tuple[sm2.SM2PrivateKey, object]:
    gmssl_sm2 = pytest.importorskip("gmssl.sm2")
    key = sm2.generate_private_key()
    engine = gmssl_sm2.CryptSM2(private_key=f"{key.to_int():064x}", public_key=key.public_key().to_hex(),
                                mode=1)
    # CryptSM2 strips "04" with str.lstrip, which also eats leading 0/4 digits of X; set x‖y directly.
    engine.public_key = key.public_key().to_hex()[2:]
    return key, engine


def test_gmssl_signatures_verify_with_gm(sm2_backend: str, gmssl_pair: tuple) -> None:
    key, engine = gmssl_pair
    message = secrets.token_bytes(300)
    # sign_with_sm3 hashes Z with the default ID; k explicitly from secrets, never gmssl's `random`.
    signature = bytes.fromhex(engine.sign_with_sm3(message, secrets.token_hex(32)))
    assert key.public_key().verify(message, signature)
    assert not key.public_key().verify(message[1:], signature)


def test_gm_signatures_verify_with_gmssl(sm2_backend: str, gmssl_pair: tuple) -> None:
    key, engine = gmssl_pair
    message = secrets.token_bytes(300)
    signature = key.sign(message, encoding="raw")
    assert engine.verify_with_sm3(signature.hex(), message)
    assert not engine.verify_with_sm3(signature.hex(), message + b"x")


def test_gmssl_ciphertexts_decrypt_with_gm(sm2_backend: str, gmssl_pair: tuple,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    import gmssl.func

    key, engine = gmssl_pair
    # gmssl.encrypt takes its k from func.random_hex (Python's `random`): substitute `secrets`.
    monkeypatch.setattr(gmssl.func, "random_hex", lambda n: secrets.token_hex(n // 2 + 1)[:n])
    plaintext = secrets.token_bytes(100)
    ciphertext = engine.encrypt(plaintext)  # C1 (64 bytes, no 04) ‖ C3 ‖ C2
    assert key.decrypt(b"\x04" + ciphertext) == plaintext


def test_gm_ciphertexts_decrypt_with_gmssl(sm2_backend: str, gmssl_pair: tuple) -> None:
    key, engine = gmssl_pair
    plaintext = secrets.token_bytes(100)
    ciphertext = sm2.encrypt(key.public_key(), plaintext)
    assert engine.decrypt(ciphertext[1:]) == plaintext
