"""ASN.1 structures of SM2 keys, signatures and ciphertexts, byte-compatible with OpenSSL's."""

from __future__ import annotations

from gm import _der
from gm._curve import N

OID_EC_PUBLIC_KEY = "1.2.840.10045.2.1"
OID_SM2_CURVE = "1.2.156.10197.1.301"
OID_SM2_WITH_SM3 = "1.2.156.10197.1.501"

_ALGORITHM = _der.sequence(_der.oid(OID_EC_PUBLIC_KEY), _der.oid(OID_SM2_CURVE))


def _check_algorithm(alg: _der.Element) -> None:
    """ecPublicKey on the SM2 curve; some issuers put the SM2 OID in the algorithm slot itself."""
    parts = alg.expect(_der.SEQUENCE).children()
    if not parts:
        raise _der.DERError("empty AlgorithmIdentifier")
    algorithm = parts[0].as_oid()
    curve = parts[1].as_oid() if len(parts) > 1 and parts[1].tag == _der.OID else None
    if not (algorithm == OID_EC_PUBLIC_KEY and curve == OID_SM2_CURVE) and algorithm != OID_SM2_CURVE:
        raise _der.DERError(f"not an SM2 key (algorithm {algorithm}, curve {curve})")


def spki(point: bytes) -> bytes:
    """SubjectPublicKeyInfo for an uncompressed point."""
    return _der.sequence(_ALGORITHM, _der.bit_string(point))


def parse_spki(data: bytes) -> bytes:
    alg, key = _der.expect_children(_der.parse(data), (_der.SEQUENCE, _der.BIT_STRING))
    _check_algorithm(alg)
    return key.as_bits()


def ec_private_key(d: int, point: bytes | None) -> bytes:
    """SEC 1 ECPrivateKey without the curve (it sits in the PKCS#8 AlgorithmIdentifier)."""
    parts = [_der.integer(1), _der.octet_string(d.to_bytes(32, "big"))]
    if point is not None:
        parts.append(_der.explicit(1, _der.bit_string(point)))
    return _der.sequence(*parts)


def pkcs8(d: int, point: bytes | None) -> bytes:
    return _der.sequence(_der.integer(0), _ALGORITHM, _der.octet_string(ec_private_key(d, point)))


def parse_private(data: bytes) -> tuple[int, bytes | None]:
    """PKCS#8 PrivateKeyInfo or a bare SEC 1 ECPrivateKey → (d, public point if present)."""
    top = _der.parse(data).expect(_der.SEQUENCE).children()
    if len(top) >= 3 and top[1].tag == _der.SEQUENCE:  # PKCS#8
        if top[0].as_int() not in (0, 1):
            raise _der.DERError("unknown PKCS#8 version")
        _check_algorithm(top[1])
        top = _der.parse(top[2].as_octets()).expect(_der.SEQUENCE).children()
    if len(top) < 2 or top[0].as_int() != 1:
        raise _der.DERError("not an ECPrivateKey")
    d = int.from_bytes(top[1].as_octets(), "big")
    point = None
    for extra in top[2:]:
        if extra.tag == 0xA0:  # parameters: must name the SM2 curve if present
            if _der.parse(extra.content).as_oid() != OID_SM2_CURVE:
                raise _der.DERError("EC private key on a curve other than SM2")
        elif extra.tag == 0xA1:
            point = _der.parse(extra.content).as_bits()
    return d, point


def signature_der(r: int, s: int) -> bytes:
    return _der.sequence(_der.integer(r), _der.integer(s))


def parse_signature_der(data: bytes) -> tuple[int, int]:
    r, s = (e.as_int() for e in _der.expect_children(_der.parse(data), (_der.INTEGER, _der.INTEGER)))
    if not (0 < r < N and 0 < s < N):
        raise _der.DERError("signature values out of range")
    return r, s


def ciphertext_der(raw_c1c3c2: bytes) -> bytes:
    """GM/T 0009 SM2Cipher: SEQUENCE {x INTEGER, y INTEGER, hash OCTET STRING, ciphertext OCTET STRING}."""
    x = int.from_bytes(raw_c1c3c2[1:33], "big")
    y = int.from_bytes(raw_c1c3c2[33:65], "big")
    return _der.sequence(_der.integer(x), _der.integer(y), _der.octet_string(raw_c1c3c2[65:97]),
                         _der.octet_string(raw_c1c3c2[97:]))


def parse_ciphertext_der(data: bytes) -> bytes:
    """SM2Cipher DER → raw 04‖x‖y ‖ C3 ‖ C2."""
    x, y, c3, c2 = _der.expect_children(
        _der.parse(data), (_der.INTEGER, _der.INTEGER, _der.OCTET_STRING, _der.OCTET_STRING))
    xi, yi = x.as_int(), y.as_int()
    if not (0 <= xi < 2**256 and 0 <= yi < 2**256) or len(c3.content) != 32:
        raise _der.DERError("malformed SM2 ciphertext")
    return b"\x04" + xi.to_bytes(32, "big") + yi.to_bytes(32, "big") + c3.content + c2.content
