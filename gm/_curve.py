"""The SM2 recommended curve (GB/T 32918.5) and the hash-based pieces shared by every backend."""

from __future__ import annotations

import hashlib

P = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFF
A = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFC
B = 0x28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E93
N = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123
GX = 0x32C4AE2C1F1981195F9904466A39C9948FE30BBFF2660BE1715A4589334C74C7
GY = 0xBC3736A2F4F6779C59BDCEE36B692153D0A9877CC62A474002DF32E52139F0A0

# ENTL is a 16-bit count of ID *bits*.
MAX_UID_BYTES = 0xFFFF // 8

_CURVE_BLOCK = b"".join(v.to_bytes(32, "big") for v in (A, B, GX, GY))


def is_on_curve(x: int, y: int) -> bool:
    """Affine point check; the cofactor is 1, so every curve point lies in the prime subgroup."""
    return 0 <= x < P and 0 <= y < P and (y * y - (x * x * x + A * x + B)) % P == 0


def decode_point(point: bytes) -> tuple[int, int]:
    """`04‖X‖Y` to (x, y), refusing anything that is not a point on the curve."""
    if len(point) != 65 or point[0] != 4:
        raise ValueError("an SM2 public key is 65 bytes: 04‖X‖Y")
    x = int.from_bytes(point[1:33], "big")
    y = int.from_bytes(point[33:], "big")
    if not is_on_curve(x, y):
        raise ValueError("point is not on the SM2 curve")
    return x, y


def z_digest(point: bytes, uid: bytes) -> bytes:
    """Z_A = SM3(ENTL_A ‖ ID_A ‖ a ‖ b ‖ x_G ‖ y_G ‖ x_A ‖ y_A) (GB/T 32918.2 §5.5)."""
    if len(uid) > MAX_UID_BYTES:
        raise ValueError(f"SM2 user IDs are at most {MAX_UID_BYTES} bytes")
    h = hashlib.new("sm3", (len(uid) * 8).to_bytes(2, "big"))
    h.update(uid)
    h.update(_CURVE_BLOCK)
    h.update(point[1:])
    return h.digest()


def message_digest(point: bytes, uid: bytes, message: bytes) -> int:
    """e = SM3(Z_A ‖ M) as an integer, the value SM2 actually signs."""
    h = hashlib.new("sm3", z_digest(point, uid))
    h.update(message)
    return int.from_bytes(h.digest(), "big")


def kdf(shared: bytes, length: int) -> bytes:
    """The SM2 key derivation function with SM3 (GB/T 32918.4 §5.4.3)."""
    base = hashlib.new("sm3", shared)
    out = bytearray()
    counter = 1
    while len(out) < length:
        h = base.copy()
        h.update(counter.to_bytes(4, "big"))
        out += h.digest()
        counter += 1
    return bytes(out[:length])


def xor(data: bytes, mask: bytes) -> bytes:
    return (int.from_bytes(data, "big") ^ int.from_bytes(mask, "big")).to_bytes(len(data), "big")
