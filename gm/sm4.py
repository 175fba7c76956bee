"""SM4 (GB/T 32907) block cipher in ECB, CBC, CTR and GCM modes, through `cryptography`.

`cryptography` carries its own OpenSSL, which has SM4-GCM even where the system OpenSSL 3.0
does not. Keys are 16 bytes; ECB/CBC pad with PKCS#7 unless `padding=False`.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import padding as _padding
from cryptography.hazmat.primitives.ciphers import Cipher, CipherContext, algorithms, modes

from gm.errors import IntegrityError

KEY_SIZE = 16
BLOCK_SIZE = 16
GCM_NONCE_SIZE = 12
GCM_TAG_SIZE = 16


def _key(key: bytes) -> algorithms.SM4:
    if len(key) != KEY_SIZE:
        raise ValueError("SM4 keys are 16 bytes")
    return algorithms.SM4(bytes(key))


def _pad(data: bytes) -> bytes:
    padder = _padding.PKCS7(128).padder()
    return padder.update(data) + padder.finalize()


def _unpad(data: bytes) -> bytes:
    unpadder = _padding.PKCS7(128).unpadder()
    try:
        return unpadder.update(data) + unpadder.finalize()
    except ValueError:
        raise ValueError("bad PKCS#7 padding (wrong key or corrupted data)") from None


def _run(context: CipherContext, data: bytes) -> bytes:
    return context.update(data) + context.finalize()


def ecb_encryptor(key: bytes) -> CipherContext:
    """A raw block encryptor (no padding) to feed 16-byte blocks one after another."""
    return Cipher(_key(key), modes.ECB()).encryptor()  # noqa: S305 - ECB is part of the standard


def ecb_decryptor(key: bytes) -> CipherContext:
    return Cipher(_key(key), modes.ECB()).decryptor()  # noqa: S305


def encrypt_ecb(key: bytes, plaintext: bytes, *, padding: bool = True) -> bytes:
    data = _pad(plaintext) if padding else bytes(plaintext)
    if len(data) % BLOCK_SIZE:
        raise ValueError("without padding the input must be whole 16-byte blocks")
    return _run(ecb_encryptor(key), data)


def decrypt_ecb(key: bytes, ciphertext: bytes, *, padding: bool = True) -> bytes:
    if len(ciphertext) % BLOCK_SIZE:
        raise ValueError("ECB ciphertext must be whole 16-byte blocks")
    data = _run(ecb_decryptor(key), bytes(ciphertext))
    return _unpad(data) if padding else data


def encrypt_cbc(key: bytes, iv: bytes, plaintext: bytes, *, padding: bool = True) -> bytes:
    data = _pad(plaintext) if padding else bytes(plaintext)
    if len(data) % BLOCK_SIZE:
        raise ValueError("without padding the input must be whole 16-byte blocks")
    return _run(Cipher(_key(key), modes.CBC(bytes(iv))).encryptor(), data)


def decrypt_cbc(key: bytes, iv: bytes, ciphertext: bytes, *, padding: bool = True) -> bytes:
    if len(ciphertext) % BLOCK_SIZE:
        raise ValueError("CBC ciphertext must be whole 16-byte blocks")
    data = _run(Cipher(_key(key), modes.CBC(bytes(iv))).decryptor(), bytes(ciphertext))
    return _unpad(data) if padding else data


def encrypt_ctr(key: bytes, counter_block: bytes, data: bytes) -> bytes:
    """CTR with a 16-byte initial counter block; never reuse one under the same key."""
    return _run(Cipher(_key(key), modes.CTR(bytes(counter_block))).encryptor(), bytes(data))


def decrypt_ctr(key: bytes, counter_block: bytes, data: bytes) -> bytes:
    return encrypt_ctr(key, counter_block, data)


def encrypt_gcm(key: bytes, nonce: bytes, plaintext: bytes, aad: bytes = b"") -> bytes:
    """SM4-GCM (RFC 8998): ciphertext ‖ 16-byte tag. The 12-byte nonce must never repeat under a key."""
    if len(nonce) != GCM_NONCE_SIZE:
        raise ValueError("SM4-GCM nonces are 12 bytes here")
    encryptor = Cipher(_key(key), modes.GCM(bytes(nonce))).encryptor()
    if aad:
        encryptor.authenticate_additional_data(bytes(aad))
    return encryptor.update(bytes(plaintext)) + encryptor.finalize() + encryptor.tag


def decrypt_gcm(key: bytes, nonce: bytes, data: bytes, aad: bytes = b"") -> bytes:
    """Inverse of `encrypt_gcm`; raises `gm.errors.IntegrityError` if anything was altered."""
    if len(nonce) != GCM_NONCE_SIZE:
        raise ValueError("SM4-GCM nonces are 12 bytes here")
    if len(data) < GCM_TAG_SIZE:
        raise IntegrityError("SM4-GCM data shorter than its tag")
    body, tag = bytes(data[:-GCM_TAG_SIZE]), bytes(data[-GCM_TAG_SIZE:])
    decryptor = Cipher(_key(key), modes.GCM(bytes(nonce), tag)).decryptor()
    if aad:
        decryptor.authenticate_additional_data(bytes(aad))
    plaintext = decryptor.update(body)
    try:
        decryptor.finalize()
    except InvalidTag:
        raise IntegrityError("SM4-GCM authentication failed: wrong key or altered data") from None
    return plaintext
