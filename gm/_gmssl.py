"""SM2 on gmssl's pure-Python point arithmetic: the fallback when libcrypto lacks SM2 (~64 verifies/s).

gmssl draws its nonces from `random`, which is not cryptographic, and its `decrypt` never checks
C3, so only its curve arithmetic and its fixed-nonce `sign` are used: every k comes from
`secrets` here, and hashing, KDF and the C3 check are ours (through hashlib's SM3).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import warnings
from typing import Any

from gm._curve import GX, GY, N, decode_point, kdf, message_digest, xor
from gm.errors import BackendUnavailable, DecryptionError

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    try:
        from gmssl import sm2 as _sm2
    except ImportError as exc:  # pragma: no cover - gmssl is a pinned dependency
        _sm2 = None
        _IMPORT_ERROR: ImportError | None = exc
    else:
        _IMPORT_ERROR = None

_G = f"{GX:064x}{GY:064x}"


def _crypt_sm2(d: int | None, point: bytes) -> Any:
    assert _sm2 is not None
    engine = _sm2.CryptSM2(private_key=f"{d:064x}" if d is not None else "", public_key=point.hex())
    # The constructor strips the 04 prefix with str.lstrip("04"), which also eats leading 0/4 digits
    # of X; set the 128-hex x‖y form directly.
    engine.public_key = point[1:].hex()
    return engine


def _point(hex_xy: str | None) -> bytes:
    if not hex_xy:
        raise ArithmeticError("point at infinity")
    return b"\x04" + bytes.fromhex(hex_xy)


class GmsslBackend:
    key = "gmssl"
    name = "gmssl (pure Python)"

    def __init__(self) -> None:
        if _sm2 is None:
            raise BackendUnavailable(f"gmssl is not installed: {_IMPORT_ERROR}")
        self._engine = _crypt_sm2(None, b"\x04" + bytes(64))

    def _mul(self, k: int, point_hex: str = _G) -> bytes:
        return _point(self._engine._kg(k, point_hex))

    def generate(self) -> tuple[int, bytes]:
        d = 1 + secrets.randbelow(N - 2)  # [1, n-2]: SM2 needs 1+d invertible
        return d, self._mul(d)

    def public_from_private(self, d: int) -> bytes:
        return self._mul(d)

    def load_public(self, point: bytes) -> Any:
        return _crypt_sm2(None, point)

    def load_private(self, d: int, point: bytes) -> Any:
        return _crypt_sm2(d, point)

    def sign(self, handle: Any, message: bytes, uid: bytes, k: int | None = None) -> tuple[int, int]:
        """`k` is only for known-answer tests; otherwise a fresh one comes from `secrets`."""
        point = b"\x04" + bytes.fromhex(handle.public_key)
        e = message_digest(point, uid, message).to_bytes(32, "big")
        while True:
            nonce = k if k is not None else 1 + secrets.randbelow(N - 1)
            signature = handle.sign(e, f"{nonce:064x}")
            if signature is not None:
                return int(signature[:64], 16), int(signature[64:], 16)
            if k is not None:
                raise ValueError("this k gives r = 0, r + k = n or s = 0")

    def verify(self, point: bytes, message: bytes, uid: bytes, r: int, s: int) -> bool:
        if not (0 < r < N and 0 < s < N):
            return False
        engine = self.load_public(point)
        e = message_digest(point, uid, message).to_bytes(32, "big")
        try:
            return bool(engine.verify(f"{r:064x}{s:064x}", e))
        except (TypeError, ValueError):  # gmssl raises when s·G + t·P is the point at infinity
            return False

    def encrypt(self, point: bytes, plaintext: bytes, k: int | None = None) -> bytes:
        """Raw C1‖C3‖C2 (GB/T 32918.4 §6.1); `k` only for known-answer tests."""
        while True:
            nonce = k if k is not None else 1 + secrets.randbelow(N - 1)
            c1 = self._mul(nonce)
            shared = self._mul(nonce, point[1:].hex())[1:]
            mask = kdf(shared, len(plaintext))
            if any(mask):
                break
            if k is not None:
                raise ValueError("this k gives an all-zero KDF output")
        c3 = _sm3(shared[:32] + plaintext + shared[32:])
        return c1 + c3 + xor(plaintext, mask)

    def decrypt(self, handle: Any, ciphertext: bytes) -> bytes:
        try:
            decode_point(ciphertext[:65])  # refuse invalid-curve points before multiplying
            shared = self._mul(int(handle.private_key, 16), ciphertext[1:65].hex())[1:]
        except (ValueError, ArithmeticError) as exc:
            raise DecryptionError(f"SM2 decryption failed: {exc}") from None
        c3, c2 = ciphertext[65:97], ciphertext[97:]
        mask = kdf(shared, len(c2))
        if not any(mask):
            raise DecryptionError("SM2 decryption failed: all-zero KDF output")
        plaintext = xor(c2, mask)
        if not hmac.compare_digest(_sm3(shared[:32] + plaintext + shared[32:]), c3):
            raise DecryptionError("SM2 decryption failed: wrong key or altered ciphertext")
        return plaintext


def _sm3(data: bytes) -> bytes:
    return hashlib.new("sm3", data).digest()
