"""SM2 X.509 v3 certificates: issue (self- or issuer-signed) and read back.

`cryptography` cannot sign with SM2, so the TBSCertificate is built with gm's DER encoder and
signed with SM2-with-SM3 (OID 1.2.156.10197.1.501) under the GM/T 0009 default user ID
1234567812345678. The key is id-ecPublicKey with the SM2 curve (1.2.156.10197.1.301).

OpenSSL 3.0 checks SM2 certificate signatures with an *empty* ID unless told otherwise:
`openssl verify -vfyopt distid:1234567812345678 -CAfile ca.pem leaf.pem` (pass `uid=b""` here
to issue certificates that plain `openssl verify` accepts).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from gm import _asn1, _der, _pem
from gm.errors import CertificateError, InvalidKey
from gm.sm2 import DEFAULT_UID, SM2PrivateKey, SM2PublicKey
from gm.sm3 import sm3_digest

_SIGNATURE_ALGORITHM = _der.sequence(_der.oid(_asn1.OID_SM2_WITH_SM3))

# Short names as OpenSSL prints them; C and serialNumber are PrintableString, emails IA5String.
NAME_OIDS = {
    "CN": "2.5.4.3", "SN": "2.5.4.4", "serialNumber": "2.5.4.5", "C": "2.5.4.6", "L": "2.5.4.7",
    "ST": "2.5.4.8", "street": "2.5.4.9", "O": "2.5.4.10", "OU": "2.5.4.11", "title": "2.5.4.12",
    "GN": "2.5.4.42", "emailAddress": "1.2.840.113549.1.9.1", "DC": "0.9.2342.19200300.100.1.25",
    "UID": "0.9.2342.19200300.100.1.1",
}
_OID_NAMES = {v: k for k, v in NAME_OIDS.items()}
_PRINTABLE = {"C", "serialNumber"}
_IA5 = {"emailAddress", "DC"}

_EXT_BASIC_CONSTRAINTS = "2.5.29.19"
_EXT_KEY_USAGE = "2.5.29.15"
_EXT_SUBJECT_KEY_ID = "2.5.29.14"
_EXT_AUTHORITY_KEY_ID = "2.5.29.35"

# keyUsage BIT STRINGs, DER (trailing zero bits dropped):
# CA: digitalSignature, keyCertSign, cRLSign; end entity: digitalSignature, nonRepudiation,
# keyEncipherment, dataEncipherment (SM2 keys both sign and receive envelopes).
_KEY_USAGE_CA = _der.tlv(_der.BIT_STRING, b"\x01\x86")
_KEY_USAGE_END_ENTITY = _der.tlv(_der.BIT_STRING, b"\x04\xf0")


@dataclass(frozen=True, eq=False)
class Certificate:
    """What an SM2 certificate says, plus the DER needed to check its signature."""

    subject: dict[str, str]
    issuer: dict[str, str]
    serial: int
    not_before: datetime
    not_after: datetime
    public_key: SM2PublicKey
    is_ca: bool
    signature_algorithm: str
    signature: bytes
    subject_key_id: bytes | None
    authority_key_id: bytes | None
    der: bytes = field(repr=False)
    tbs: bytes = field(repr=False)
    subject_der: bytes = field(repr=False)
    issuer_der: bytes = field(repr=False)

    def verify_signature(self, issuer_public_key: SM2PublicKey | Certificate,
                         uid: bytes = DEFAULT_UID) -> bool:
        """Whether the issuer's key signed this certificate (SM2-with-SM3); never raises."""
        key = issuer_public_key
        if isinstance(key, Certificate):
            key = key.public_key
        if self.signature_algorithm != _asn1.OID_SM2_WITH_SM3:
            return False
        return key.verify(self.tbs, self.signature, uid)

    def is_valid_at(self, moment: datetime) -> bool:
        return self.not_before <= moment <= self.not_after

    def fingerprint(self) -> bytes:
        """SM3 of the DER certificate."""
        return sm3_digest(self.der)

    def to_pem(self) -> bytes:
        return _pem.encode("CERTIFICATE", self.der)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Certificate) and other.der == self.der

    def __hash__(self) -> int:
        return hash(self.der)


def _name(attributes: Mapping[str, str]) -> bytes:
    if not attributes:
        raise ValueError("a certificate name needs at least one attribute (e.g. CN)")
    rdns = []
    for key, value in attributes.items():
        oid = NAME_OIDS.get(key, key)
        if not oid.replace(".", "").isdigit():
            raise ValueError(f"unknown name attribute {key!r}; use {sorted(NAME_OIDS)} or a dotted OID")
        if key in _PRINTABLE:
            encoded = _der.printable_string(value)
        elif key in _IA5:
            encoded = _der.ia5_string(value)
        else:
            encoded = _der.utf8_string(value)
        rdns.append(_der.set_of(_der.sequence(_der.oid(oid), encoded)))
    return _der.sequence(*rdns)


def _parse_name(element: _der.Element) -> dict[str, str]:
    names: dict[str, str] = {}
    for rdn in element.expect(_der.SEQUENCE).children():
        for attribute in rdn.expect(_der.SET).children():
            oid, value = attribute.expect(_der.SEQUENCE).children()
            names[_OID_NAMES.get(oid.as_oid(), oid.as_oid())] = value.as_text()
    return names


def _key_id(public_key: SM2PublicKey) -> bytes:
    # RFC 5280 §4.2.1.2 leaves the method open; 20 bytes of SM3 keeps the SHA-1 length.
    return sm3_digest(public_key.to_bytes())[:20]


def _extension(oid: str, value: bytes, critical: bool = False) -> bytes:
    parts = [_der.oid(oid)] + ([_der.boolean(True)] if critical else []) + [_der.octet_string(value)]
    return _der.sequence(*parts)


def make_certificate(
    subject_key: SM2PrivateKey | SM2PublicKey,
    issuer_key: SM2PrivateKey,
    subject: Mapping[str, str],
    serial: int,
    not_before: datetime,
    not_after: datetime,
    *,
    issuer: Mapping[str, str] | Certificate | None = None,
    is_ca: bool | None = None,
    uid: bytes = DEFAULT_UID,
) -> bytes:
    """Issue an SM2 certificate and return it as PEM.

    Self-signed when `issuer_key` is the subject's own key (then `issuer` defaults to `subject`);
    otherwise pass the issuer's `Certificate` (or its name) as `issuer`. `is_ca` defaults to True
    for self-signed certificates. Times must be timezone-aware; `serial` is 1 .. 2¹⁵⁹-1.
    """
    public_key = subject_key.public_key() if isinstance(subject_key, SM2PrivateKey) else subject_key
    issuer_public = issuer_key.public_key()
    self_signed = issuer_public == public_key
    if not 0 < serial < 1 << 159:
        raise ValueError("serial numbers are positive and at most 20 octets (RFC 5280 §4.1.2.2)")
    if not_before.tzinfo is None or not_after.tzinfo is None:
        raise ValueError("not_before and not_after must be timezone-aware")
    if not_after <= not_before:
        raise ValueError("not_after must come after not_before")
    subject_name = _name(subject)
    if isinstance(issuer, Certificate):
        if issuer.public_key != issuer_public:
            raise ValueError("issuer_key does not match the issuer certificate")
        issuer_name = issuer.subject_der
    elif issuer is not None:
        issuer_name = _name(issuer)
    elif self_signed:
        issuer_name = subject_name
    else:
        raise ValueError("pass issuer= (certificate or name) when the issuer is not the subject")
    ca = self_signed if is_ca is None else is_ca
    extensions = [
        _extension(_EXT_BASIC_CONSTRAINTS, _der.sequence(_der.boolean(True)) if ca else _der.sequence(),
                   critical=True),
        _extension(_EXT_KEY_USAGE, _KEY_USAGE_CA if ca else _KEY_USAGE_END_ENTITY, critical=True),
        _extension(_EXT_SUBJECT_KEY_ID, _der.octet_string(_key_id(public_key))),
        _extension(_EXT_AUTHORITY_KEY_ID, _der.sequence(_der.tlv(0x80, _key_id(issuer_public)))),
    ]
    tbs = _der.sequence(
        _der.explicit(0, _der.integer(2)),  # v3
        _der.integer(serial),
        _SIGNATURE_ALGORITHM,
        issuer_name,
        _der.sequence(_der.time(not_before), _der.time(not_after)),
        subject_name,
        public_key.to_der(),
        _der.explicit(3, _der.sequence(*extensions)),
    )
    signature = issuer_key.sign(tbs, uid)
    der = _der.sequence(tbs, _SIGNATURE_ALGORITHM, _der.bit_string(signature))
    return _pem.encode("CERTIFICATE", der)


def _algorithm_oid(element: _der.Element) -> str:
    parts = element.expect(_der.SEQUENCE).children()
    if not parts or len(parts) > 2 or (len(parts) == 2 and parts[1].tag != _der.NULL):
        raise _der.DERError("unexpected AlgorithmIdentifier")
    return parts[0].as_oid()


def _parse(der: bytes) -> Certificate:
    tbs, outer_alg, signature = _der.expect_children(
        _der.parse(der), (_der.SEQUENCE, _der.SEQUENCE, _der.BIT_STRING))
    fields = tbs.children()
    version = 1
    if fields and fields[0].tag == 0xA0:
        version = _der.parse(fields.pop(0).content).as_int() + 1
    if len(fields) < 6:
        raise _der.DERError("TBSCertificate is missing fields")
    serial, inner_alg, issuer, validity, subject, spki = fields[:6]
    algorithm = _algorithm_oid(inner_alg)
    if algorithm != _algorithm_oid(outer_alg):
        raise _der.DERError("inner and outer signature algorithms differ")
    not_before, not_after = (t.as_time() for t in validity.expect(_der.SEQUENCE).children())
    is_ca, ski, aki = False, None, None
    for extra in fields[6:]:
        if extra.tag != 0xA3 or version != 3:
            continue
        for extension in _der.parse(extra.content).expect(_der.SEQUENCE).children():
            parts = extension.expect(_der.SEQUENCE).children()
            oid, value = parts[0].as_oid(), _der.parse(parts[-1].as_octets())
            if oid == _EXT_BASIC_CONSTRAINTS:
                flags = value.children()
                is_ca = bool(flags) and flags[0].tag == _der.BOOLEAN and flags[0].as_bool()
            elif oid == _EXT_SUBJECT_KEY_ID:
                ski = value.as_octets()
            elif oid == _EXT_AUTHORITY_KEY_ID:
                aki = next((c.content for c in value.children() if c.tag == 0x80), None)
    try:
        public_key = SM2PublicKey.from_der(spki.raw)
    except InvalidKey as exc:
        raise CertificateError(f"not an SM2 certificate: {exc}") from None
    return Certificate(
        subject=_parse_name(subject), issuer=_parse_name(issuer), serial=serial.as_int(),
        not_before=not_before, not_after=not_after, public_key=public_key, is_ca=is_ca,
        signature_algorithm=algorithm, signature=signature.as_bits(), subject_key_id=ski,
        authority_key_id=aki, der=bytes(der), tbs=tbs.raw, subject_der=subject.raw, issuer_der=issuer.raw,
    )


def load_certificate(data: str | bytes) -> Certificate:
    """Read a PEM (or DER) SM2 certificate; `CertificateError` (a ValueError) if it is not one."""
    try:
        der = _pem.decode(data, ("CERTIFICATE",))[1] if isinstance(data, str) or _pem.is_pem(data) else data
        return _parse(bytes(der))
    except CertificateError:
        raise
    except (ValueError, IndexError) as exc:
        raise CertificateError(f"not a readable certificate: {exc}") from None
