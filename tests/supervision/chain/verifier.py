"""An independent ECP/1 §6 receipt verifier for the tests, written from the standards alone: SM3
from hashlib, RFC 9162 §2.1.3.2 by hand, SM2 verification with gmssl's curve arithmetic and a
hand-computed Z_A. It shares no code with the production modules."""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from typing import Any

from gmssl.sm2 import CryptSM2, default_ecc_table

DEFAULT_UID = b"1234567812345678"


def sm3(data: bytes) -> bytes:
    return hashlib.new("sm3", data).digest()


def cj(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def root_from_audit_path(leaf_index: int, tree_size: int, leaf_hash: bytes,
                         path: list[bytes]) -> bytes | None:
    """RFC 9162 §2.1.3.2, step by step, with SM3. None when the path is malformed."""
    if leaf_index >= tree_size:
        return None
    fn, sn, r = leaf_index, tree_size - 1, leaf_hash
    for p in path:
        if sn == 0:
            return None
        if fn % 2 == 1 or fn == sn:
            r = sm3(b"\x01" + p + r)
            if fn % 2 == 0:
                while not (fn % 2 == 1 or fn == 0):
                    fn >>= 1
                    sn >>= 1
        else:
            r = sm3(b"\x01" + r + p)
        fn >>= 1
        sn >>= 1
    return r if sn == 0 else None


def _der_signature(sig: bytes) -> tuple[int, int]:
    assert sig[0] == 0x30 and sig[1] == len(sig) - 2, "not a DER SEQUENCE"
    values, at = [], 2
    for _ in range(2):
        assert sig[at] == 0x02
        length = sig[at + 1]
        values.append(int.from_bytes(sig[at + 2:at + 2 + length], "big"))
        at += 2 + length
    assert at == len(sig)
    return values[0], values[1]


@lru_cache(maxsize=256)  # gmssl is pure Python: verify each (key, message, signature) once
def sm2_verify(public_key_hex: str, message: bytes, signature: bytes, uid: bytes = DEFAULT_UID) -> bool:
    """GB/T 32918.2: e = SM3(Z_A ‖ M), Z_A = SM3(ENTL ‖ ID ‖ a ‖ b ‖ xG ‖ yG ‖ xA ‖ yA)."""
    assert public_key_hex.startswith("04") and len(public_key_hex) == 130
    xy = public_key_hex[2:]
    table = default_ecc_table
    curve = bytes.fromhex(table["a"] + table["b"] + table["g"] + xy)
    z = sm3((len(uid) * 8).to_bytes(2, "big") + uid + curve)
    e = sm3(z + message)
    r, s = _der_signature(signature) if len(signature) != 64 else (
        int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big"))
    crypt = CryptSM2(private_key=None, public_key="00")
    crypt.public_key = xy  # set directly: gmssl's constructor strips leading "0"/"4" characters
    return bool(crypt.verify(f"{r:064x}{s:064x}", e))


def verify_receipt(receipt: dict[str, Any], *, chain: str, height: int, block_hash: str) -> None:
    """Raise AssertionError unless the receipt proves (chain, height, block_hash)."""
    assert set(receipt) >= {"chain", "height", "block_hash", "leaf_index", "tree_size", "audit_path",
                            "supervision_block"}
    assert (receipt["chain"], receipt["height"], receipt["block_hash"]) == (chain, height, block_hash)
    sealed = receipt["supervision_block"]
    assert set(sealed) >= {"header", "hash", "signature", "public_key"}
    header = sealed["header"]
    assert set(header) == {"height", "prev_hash", "timestamp", "anchor_count", "anchor_root"}
    assert sm3(cj(header)).hex() == sealed["hash"], "header hash"
    signature_ok = sm2_verify(sealed["public_key"], bytes.fromhex(sealed["hash"]),
                              bytes.fromhex(sealed["signature"]))
    assert signature_ok, "supervisor signature"
    assert receipt["tree_size"] == header["anchor_count"]
    leaf = sm3(b"\x00" + cj({"block_hash": block_hash, "chain": chain, "height": height}))
    root = root_from_audit_path(receipt["leaf_index"], receipt["tree_size"], leaf,
                                [bytes.fromhex(p) for p in receipt["audit_path"]])
    assert root is not None and root.hex() == header["anchor_root"], "audit path"
