"""SM2 (GB/T 32918): keys, signatures with Z_A and a user ID, and public-key encryption.

Keys are plain values (a point, a scalar); the active backend (`gm.backend_name()`) does the
arithmetic: libcrypto through ctypes, or gmssl with nonces from `secrets`.

Encodings:
- public key: `04‖X‖Y` (65 bytes; `to_hex()` gives 130 lowercase hex digits), SubjectPublicKeyInfo
  DER/PEM with id-ecPublicKey + the SM2 curve OID, as OpenSSL writes it;
- private key: PKCS#8 DER/PEM (SEC 1 "EC PRIVATE KEY" is read too);
- signature: DER `SEQUENCE {r, s}` (what `sign` returns) or raw `r‖s` (64 bytes);
- ciphertext: raw `C1‖C3‖C2` with C1 = `04‖x1‖y1` (GB/T 32918.4-2016 order), or C1‖C2‖C3 on request
  (the 2010 draft order), or GM/T 0009 DER via `ciphertext_to_der`; `decrypt` also takes the DER.
"""

from __future__ import annotations

import hmac
from typing import Any, Literal

from gm import _asn1, _backend, _der, _pem
from gm._curve import MAX_UID_BYTES, N, decode_point
from gm.errors import DecryptionError, InvalidKey, InvalidSignature
from gm.sm3 import sm3_digest

DEFAULT_UID = b"1234567812345678"  # GM/T 0009-2012 §10 default user ID

CiphertextOrder = Literal["C1C3C2", "C1C2C3"]
SignatureEncoding = Literal["der", "raw"]

_C1 = 65
_C3 = 32


def _uid(uid: bytes | str) -> bytes:
    value = uid.encode("utf-8") if isinstance(uid, str) else bytes(uid)
    if len(value) > MAX_UID_BYTES:
        raise ValueError(f"SM2 user IDs are at most {MAX_UID_BYTES} bytes")
    return value


class SM2PublicKey:
    """A point on the SM2 curve, checked on construction."""

    __slots__ = ("_point",)

    def __init__(self, point: bytes) -> None:
        point = bytes(point)
        try:
            decode_point(point)
        except ValueError as exc:
            raise InvalidKey(str(exc)) from None
        self._point = point

    # --- constructors -------------------------------------------------------------------

    @classmethod
    def from_bytes(cls, point: bytes) -> SM2PublicKey:
        """From the 65-byte `04‖X‖Y` form."""
        return cls(point)

    @classmethod
    def from_hex(cls, text: str) -> SM2PublicKey:
        """From 130 hex digits `04‖X‖Y` (any case)."""
        text = text.strip()
        if len(text) != 130:
            raise InvalidKey("an SM2 public key in hex is 130 digits: 04‖X‖Y")
        try:
            return cls(bytes.fromhex(text))
        except ValueError as exc:
            raise InvalidKey(f"not an SM2 public key: {exc}") from None

    @classmethod
    def from_der(cls, der: bytes) -> SM2PublicKey:
        """From a DER SubjectPublicKeyInfo."""
        try:
            return cls(_asn1.parse_spki(der))
        except _der.DERError as exc:
            raise InvalidKey(f"not an SM2 SubjectPublicKeyInfo: {exc}") from None

    @classmethod
    def from_pem(cls, pem: str | bytes) -> SM2PublicKey:
        """From a PEM "PUBLIC KEY" (SubjectPublicKeyInfo)."""
        try:
            _, der = _pem.decode(pem, ("PUBLIC KEY",))
        except ValueError as exc:
            raise InvalidKey(str(exc)) from None
        return cls.from_der(der)

    # --- encodings ----------------------------------------------------------------------

    @property
    def x(self) -> int:
        return int.from_bytes(self._point[1:33], "big")

    @property
    def y(self) -> int:
        return int.from_bytes(self._point[33:], "big")

    def to_bytes(self) -> bytes:
        return self._point

    def to_hex(self) -> str:
        return self._point.hex()

    def to_der(self) -> bytes:
        return _asn1.spki(self._point)

    def to_pem(self) -> bytes:
        return _pem.encode("PUBLIC KEY", self.to_der())

    def key_id(self) -> bytes:
        """SM3 of `04‖X‖Y`: the 32-byte identifier envelopes use for recipients."""
        return sm3_digest(self._point)

    # --- operations ---------------------------------------------------------------------

    def verify(self, message: bytes, signature: bytes, uid: bytes | str = DEFAULT_UID) -> bool:
        """True only for a valid signature (DER or raw r‖s); False for anything else, never raises."""
        try:
            candidates = _signature_candidates(bytes(signature))
            user = _uid(uid)
        except (TypeError, ValueError):
            return False
        backend = _backend.current()
        data = bytes(message)
        return any(backend.verify(self._point, data, user, r, s) for r, s in candidates)

    def encrypt(self, plaintext: bytes, *, order: CiphertextOrder = "C1C3C2") -> bytes:
        return encrypt(self, plaintext, order=order)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SM2PublicKey) and other._point == self._point

    def __hash__(self) -> int:
        return hash(self._point)

    def __repr__(self) -> str:
        return f"SM2PublicKey({self.to_hex()[:18]}…)"


class SM2PrivateKey:
    """A scalar d in [1, n-2] with its public key. repr() never shows d."""

    __slots__ = ("_d", "_handles", "_public")

    def __init__(self, d: int, point: bytes | None = None) -> None:
        if not 1 <= d <= N - 2:
            raise InvalidKey("an SM2 private key lies in [1, n-2]")
        derived = _backend.current().public_from_private(d)
        if point is not None and not hmac.compare_digest(bytes(point), derived):
            raise InvalidKey("the public key does not belong to this private key")
        self._d = d
        self._public = SM2PublicKey(derived)
        self._handles: dict[str, Any] = {}

    @classmethod
    def _trusted(cls, d: int, point: bytes) -> SM2PrivateKey:
        """From a backend's own key generation: no need to re-derive the point."""
        key = cls.__new__(cls)
        key._d = d
        key._public = SM2PublicKey(point)
        key._handles = {}
        return key

    @classmethod
    def generate(cls) -> SM2PrivateKey:
        return cls._trusted(*_backend.current().generate())

    @classmethod
    def from_int(cls, d: int) -> SM2PrivateKey:
        return cls(d)

    @classmethod
    def from_der(cls, der: bytes) -> SM2PrivateKey:
        """From DER PKCS#8 PrivateKeyInfo or SEC 1 ECPrivateKey on the SM2 curve."""
        try:
            d, point = _asn1.parse_private(der)
        except _der.DERError as exc:
            raise InvalidKey(f"not an SM2 private key: {exc}") from None
        return cls(d, point)

    @classmethod
    def from_pem(cls, pem: str | bytes) -> SM2PrivateKey:
        """From PEM "PRIVATE KEY" (PKCS#8) or "EC PRIVATE KEY" (SEC 1); not encrypted PEM."""
        try:
            _, der = _pem.decode(pem, ("PRIVATE KEY", "EC PRIVATE KEY"))
        except ValueError as exc:
            raise InvalidKey(str(exc)) from None
        return cls.from_der(der)

    def to_int(self) -> int:
        return self._d

    def to_der(self) -> bytes:
        """PKCS#8, byte-identical to `openssl pkey -outform DER`."""
        return _asn1.pkcs8(self._d, self._public.to_bytes())

    def to_pem(self) -> bytes:
        return _pem.encode("PRIVATE KEY", self.to_der())

    def public_key(self) -> SM2PublicKey:
        return self._public

    def _handle(self) -> tuple[_backend.SM2Backend, Any]:
        backend = _backend.current()
        handle = self._handles.get(backend.key)
        if handle is None:
            handle = self._handles[backend.key] = backend.load_private(self._d, self._public.to_bytes())
        return backend, handle

    def sign(self, message: bytes, uid: bytes | str = DEFAULT_UID, *,
             encoding: SignatureEncoding = "der") -> bytes:
        """Sign SM3(Z_A ‖ message) with a fresh secret nonce; DER by default, or raw r‖s."""
        backend, handle = self._handle()
        r, s = backend.sign(handle, bytes(message), _uid(uid))
        if encoding == "raw":
            return r.to_bytes(32, "big") + s.to_bytes(32, "big")
        if encoding == "der":
            return _asn1.signature_der(r, s)
        raise ValueError(f"unknown signature encoding {encoding!r}")

    def decrypt(self, ciphertext: bytes, *, order: CiphertextOrder = "C1C3C2") -> bytes:
        """Decrypt raw C1C3C2 (or C1C2C3 with `order`) or GM/T 0009 DER; DecryptionError if altered."""
        raw = _to_c1c3c2(bytes(ciphertext), order)
        backend, handle = self._handle()
        return backend.decrypt(handle, raw)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SM2PrivateKey) and hmac.compare_digest(
            self._d.to_bytes(32, "big"), other._d.to_bytes(32, "big"))

    def __hash__(self) -> int:
        return hash(self._public)

    def __repr__(self) -> str:
        return f"SM2PrivateKey(public={self._public.to_hex()[:18]}…)"


# --- module functions -----------------------------------------------------------------------

def generate_private_key() -> SM2PrivateKey:
    return SM2PrivateKey.generate()


def load_public_key(text: str | bytes) -> SM2PublicKey:
    """A public key from 130 hex digits, a PEM SubjectPublicKeyInfo or a PEM SM2 certificate.

    Raises ValueError (`gm.errors.InvalidKey`) for anything else.
    """
    if isinstance(text, bytes | bytearray):
        try:
            text = bytes(text).decode("ascii")
        except UnicodeDecodeError:
            raise InvalidKey("not a hex, PEM key or PEM certificate") from None
    if not isinstance(text, str):
        raise InvalidKey("expected str or bytes")
    stripped = text.strip()
    if "-----BEGIN CERTIFICATE-----" in stripped:
        from gm import cert  # cert builds on this module

        return cert.load_certificate(stripped).public_key
    if "-----BEGIN PUBLIC KEY-----" in stripped:
        return SM2PublicKey.from_pem(stripped)
    return SM2PublicKey.from_hex(stripped)


def load_private_key(data: str | bytes) -> SM2PrivateKey:
    """A private key from PEM (PKCS#8 or SEC 1) or DER PKCS#8."""
    if isinstance(data, str) or _pem.is_pem(data):
        return SM2PrivateKey.from_pem(data)
    return SM2PrivateKey.from_der(data)


def encrypt(public_key: SM2PublicKey, plaintext: bytes, *, order: CiphertextOrder = "C1C3C2") -> bytes:
    """SM2-encrypt to `public_key`: raw C1‖C3‖C2 (C1 = 04‖x‖y), or C1‖C2‖C3. Plaintext must be non-empty."""
    if order not in ("C1C3C2", "C1C2C3"):
        raise ValueError(f"unknown ciphertext order {order!r}")
    data = bytes(plaintext)
    if not data:
        raise ValueError("SM2 cannot encrypt an empty message")
    raw = _backend.current().encrypt(public_key.to_bytes(), data)
    return raw if order == "C1C3C2" else raw[:_C1] + raw[_C1 + _C3:] + raw[_C1:_C1 + _C3]


def decrypt(private_key: SM2PrivateKey, ciphertext: bytes, *, order: CiphertextOrder = "C1C3C2") -> bytes:
    return private_key.decrypt(ciphertext, order=order)


def _to_c1c3c2(ciphertext: bytes, order: str) -> bytes:
    if order not in ("C1C3C2", "C1C2C3"):
        raise ValueError(f"unknown ciphertext order {order!r}")
    if ciphertext[:1] == b"\x30":  # GM/T 0009 DER; a raw ciphertext starts with 04
        try:
            return _asn1.parse_ciphertext_der(ciphertext)
        except _der.DERError as exc:
            raise DecryptionError(f"malformed SM2 ciphertext: {exc}") from None
    if len(ciphertext) <= _C1 + _C3 or ciphertext[0] != 4:
        raise DecryptionError("malformed SM2 ciphertext: expected 04‖x‖y, C3 and a non-empty C2")
    if order == "C1C3C2":
        return ciphertext
    return ciphertext[:_C1] + ciphertext[-_C3:] + ciphertext[_C1:-_C3]


def ciphertext_to_der(ciphertext: bytes, *, order: CiphertextOrder = "C1C3C2") -> bytes:
    """Raw ciphertext → GM/T 0009 `SM2Cipher` DER (what OpenSSL's pkeyutl reads and writes)."""
    return _asn1.ciphertext_der(_to_c1c3c2(bytes(ciphertext), order))


def ciphertext_from_der(der: bytes, *, order: CiphertextOrder = "C1C3C2") -> bytes:
    """GM/T 0009 `SM2Cipher` DER → raw ciphertext in `order`."""
    try:
        raw = _asn1.parse_ciphertext_der(bytes(der))
    except _der.DERError as exc:
        raise DecryptionError(f"malformed SM2 ciphertext: {exc}") from None
    return raw if order == "C1C3C2" else raw[:_C1] + raw[_C1 + _C3:] + raw[_C1:_C1 + _C3]


# --- signature encodings --------------------------------------------------------------------

def _raw_pair(sig: bytes) -> tuple[int, int]:
    r, s = int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big")
    if not (0 < r < N and 0 < s < N):
        raise InvalidSignature("signature values out of range")
    return r, s


def _der_pair(sig: bytes) -> tuple[int, int]:
    try:
        return _asn1.parse_signature_der(sig)
    except _der.DERError as exc:
        raise InvalidSignature(f"not a DER SM2 signature: {exc}") from None


def _signature_candidates(sig: bytes) -> list[tuple[int, int]]:
    """(r, s) readings of `sig`: 64 bytes is raw, but is also tried as DER in case it parses."""
    if len(sig) != 64:
        return [_der_pair(sig)]
    pairs = []
    for reader in (_raw_pair, _der_pair):
        try:
            pairs.append(reader(sig))
        except InvalidSignature:
            continue
    if not pairs:
        raise InvalidSignature("not a raw r‖s or DER SM2 signature")
    return pairs


def signature_to_raw(signature: bytes) -> bytes:
    """DER or raw → raw r‖s (64 bytes). A 64-byte input is taken as raw already."""
    sig = bytes(signature)
    r, s = _raw_pair(sig) if len(sig) == 64 else _der_pair(sig)
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def signature_to_der(signature: bytes) -> bytes:
    """Raw r‖s or DER → DER (re-encoded canonically)."""
    sig = bytes(signature)
    r, s = _raw_pair(sig) if len(sig) == 64 else _der_pair(sig)
    return _asn1.signature_der(r, s)


__all__ = [
    "DEFAULT_UID",
    "SM2PrivateKey",
    "SM2PublicKey",
    "ciphertext_from_der",
    "ciphertext_to_der",
    "decrypt",
    "encrypt",
    "generate_private_key",
    "load_private_key",
    "load_public_key",
    "signature_to_der",
    "signature_to_raw",
]
