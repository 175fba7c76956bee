"""SM2 certificates: issue, read back, and agree with the openssl command."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from gm import _pem, cert, sm2
from gm.errors import CertificateError

from .conftest import run

NOW = datetime(2026, 3, 1, 8, 30, tzinfo=UTC)


@pytest.fixture(scope="module")
def ca_key() -> sm2.SM2PrivateKey:
    return sm2.generate_private_key()


@pytest.fixture(scope="module")
def ca_pem(ca_key: sm2.SM2PrivateKey) -> bytes:
    return cert.make_certificate(ca_key, ca_key, {"CN": "Supervision Root CA", "O": "监管局", "C": "CN"},
                                 1, NOW, NOW + timedelta(days=3650))


def test_self_signed_certificate_reads_back(sm2_backend: str, ca_key: sm2.SM2PrivateKey) -> None:
    pem = cert.make_certificate(ca_key, ca_key, {"CN": "Root", "O": "监管局", "C": "CN"}, 2**64 + 5,
                                NOW, NOW + timedelta(days=365))
    assert pem.startswith(b"-----BEGIN CERTIFICATE-----\n")
    certificate = cert.load_certificate(pem)
    assert certificate.subject == {"CN": "Root", "O": "监管局", "C": "CN"}
    assert certificate.issuer == certificate.subject
    assert certificate.serial == 2**64 + 5
    assert certificate.not_before == NOW
    assert certificate.not_after == NOW + timedelta(days=365)
    assert certificate.public_key == ca_key.public_key()
    assert certificate.is_ca
    assert certificate.signature_algorithm == "1.2.156.10197.1.501"
    assert certificate.verify_signature(ca_key.public_key())
    assert certificate.verify_signature(certificate)
    assert not certificate.verify_signature(sm2.generate_private_key().public_key())
    assert not certificate.verify_signature(ca_key.public_key(), uid=b"another id")
    assert certificate.to_pem() == pem
    assert cert.load_certificate(certificate.der) == certificate
    assert len(certificate.fingerprint()) == 32


def test_issuer_signed_certificate_chains_to_its_issuer(sm2_backend: str, ca_key: sm2.SM2PrivateKey,
                                                        ca_pem: bytes) -> None:
    ca = cert.load_certificate(ca_pem)
    leaf_key = sm2.generate_private_key()
    leaf = cert.load_certificate(cert.make_certificate(
        leaf_key.public_key(), ca_key, {"CN": "chain-7"}, 42, NOW, NOW + timedelta(days=30), issuer=ca))
    assert leaf.issuer == ca.subject and leaf.issuer_der == ca.subject_der
    assert not leaf.is_ca
    assert leaf.authority_key_id == ca.subject_key_id
    assert leaf.verify_signature(ca)
    assert not leaf.verify_signature(leaf_key.public_key())
    assert leaf.is_valid_at(NOW + timedelta(days=1)) and not leaf.is_valid_at(NOW + timedelta(days=31))


def test_times_are_utc_and_generalized_after_2049(ca_key: sm2.SM2PrivateKey) -> None:
    beijing = timezone(timedelta(hours=8))
    start = datetime(2030, 1, 1, 8, 0, tzinfo=beijing)
    end = datetime(2060, 1, 1, tzinfo=UTC)
    certificate = cert.load_certificate(cert.make_certificate(ca_key, ca_key, {"CN": "long"}, 3, start, end))
    assert certificate.not_before == datetime(2030, 1, 1, 0, 0, tzinfo=UTC)
    assert certificate.not_after == end


def test_bad_requests_are_refused(ca_key: sm2.SM2PrivateKey) -> None:
    other = sm2.generate_private_key()
    end = NOW + timedelta(days=1)
    with pytest.raises(ValueError, match="issuer"):
        cert.make_certificate(other, ca_key, {"CN": "x"}, 1, NOW, end)
    with pytest.raises(ValueError, match="serial"):
        cert.make_certificate(ca_key, ca_key, {"CN": "x"}, 0, NOW, end)
    with pytest.raises(ValueError, match="timezone"):
        cert.make_certificate(ca_key, ca_key, {"CN": "x"}, 1, NOW.replace(tzinfo=None), end)
    with pytest.raises(ValueError, match="after"):
        cert.make_certificate(ca_key, ca_key, {"CN": "x"}, 1, end, NOW)
    with pytest.raises(ValueError, match="attribute"):
        cert.make_certificate(ca_key, ca_key, {"Nickname": "x"}, 1, NOW, end)


def test_non_sm2_or_broken_certificates_are_refused() -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "p256")])
    p256 = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(NOW).not_valid_after(NOW + timedelta(days=1))
            .sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))
    for junk in (p256, b"", b"not a certificate", _pem.encode("CERTIFICATE", b"\x30\x03\x02\x01\x01")):
        with pytest.raises(CertificateError):
            cert.load_certificate(junk)
    with pytest.raises(ValueError):
        sm2.load_public_key(p256)


def test_openssl_reads_our_certificates_and_verifies_the_chain(openssl_cli: str, ca_key: sm2.SM2PrivateKey,
                                                               ca_pem: bytes, tmp_path: Path) -> None:
    ca_path, leaf_path, forged_path = tmp_path / "ca.pem", tmp_path / "leaf.pem", tmp_path / "forged.pem"
    ca_path.write_bytes(ca_pem)
    leaf_key = sm2.generate_private_key()
    leaf = cert.make_certificate(leaf_key.public_key(), ca_key, {"CN": "leaf", "O": "Org"}, 99, NOW,
                                 NOW + timedelta(days=30), issuer=cert.load_certificate(ca_pem))
    leaf_path.write_bytes(leaf)
    text = run(openssl_cli, "x509", "-in", leaf_path, "-text", "-noout").decode()
    assert "Signature Algorithm: SM2-with-SM3" in text
    assert "ASN1 OID: SM2" in text and "Serial Number: 99" in text
    assert "Issuer: CN = Supervision Root CA" in text and "Subject: CN = leaf, O = Org" in text
    assert leaf_key.public_key().to_hex() in text.replace(":", "").replace(" ", "").replace("\n", "")
    # OpenSSL 3.0 checks certificate signatures with an empty ID unless given the GM/T 0009 default.
    verify = [openssl_cli, "verify", "-vfyopt", "distid:1234567812345678", "-attime",
              str(int((NOW + timedelta(days=1)).timestamp())), "-CAfile", ca_path]
    assert run(*verify, leaf_path).strip().endswith(b"OK")
    der = bytearray(cert.load_certificate(leaf).der)
    der[-10] ^= 0x01  # inside the signature
    forged_path.write_bytes(_pem.encode("CERTIFICATE", bytes(der)))
    with pytest.raises(AssertionError, match="signature failure"):
        run(*verify, forged_path)


def test_certificates_made_by_openssl_verify_with_gm(sm2_backend: str, openssl_cli: str,
                                                     tmp_path: Path) -> None:
    key_path = tmp_path / "key.pem"
    run(openssl_cli, "genpkey", "-algorithm", "SM2", "-out", key_path)
    made = {}
    for label, extra in (("default-id", ["-sigopt", "distid:1234567812345678"]), ("empty-id", [])):
        out = tmp_path / f"{label}.pem"
        run(openssl_cli, "req", "-x509", "-new", "-key", key_path, "-sm3", "-subj", f"/CN={label}/O=Org",
            "-days", "2", "-set_serial", "77", *extra, "-out", out)
        made[label] = cert.load_certificate(out.read_bytes())
    key = sm2.SM2PrivateKey.from_pem(key_path.read_bytes())
    for certificate in made.values():
        assert certificate.public_key == key.public_key()
        assert certificate.serial == 77 and certificate.is_ca
    assert made["default-id"].subject == {"CN": "default-id", "O": "Org"}
    assert made["default-id"].verify_signature(key.public_key())
    assert made["empty-id"].verify_signature(key.public_key(), uid=b"")
    assert not made["empty-id"].verify_signature(key.public_key())
