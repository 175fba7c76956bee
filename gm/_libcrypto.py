"""SM2 through OpenSSL 3's libcrypto via ctypes: about 30× faster than pure Python.

`cryptography` has no SM2 and bundles its own OpenSSL, so we bind the system libcrypto — the one
`hashlib` already uses for SM3. Only OpenSSL ≥ 3.0 APIs are used: keys come from DER through
d2i_PUBKEY / d2i_AutoPrivateKey, the distinguishing ID goes in as the "distid" parameter of
EVP_DigestSignInit_ex / EVP_DigestVerifyInit_ex (which computes Z_A and SM3 itself).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import threading
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

from gm import _asn1
from gm._curve import N
from gm.errors import BackendUnavailable, DecryptionError

_void_p = ctypes.c_void_p
_char_p = ctypes.c_char_p
_size_t = ctypes.c_size_t
_int = ctypes.c_int


_MAX_SIG = 72  # DER of two 33-byte INTEGERs
_PUBLIC_CACHE_SIZE = 4096

_SIGNATURES: dict[str, tuple[Any, list[Any]]] = {
    "OpenSSL_version_num": (ctypes.c_ulong, []),
    "OpenSSL_version": (_char_p, [_int]),
    "ERR_clear_error": (None, []),
    "EVP_PKEY_CTX_new_from_name": (_void_p, [_void_p, _char_p, _char_p]),
    "EVP_PKEY_CTX_new_from_pkey": (_void_p, [_void_p, _void_p, _char_p]),
    "EVP_PKEY_CTX_free": (None, [_void_p]),
    "EVP_PKEY_keygen_init": (_int, [_void_p]),
    "EVP_PKEY_generate": (_int, [_void_p, ctypes.POINTER(_void_p)]),
    "EVP_PKEY_free": (None, [_void_p]),
    "EVP_PKEY_is_a": (_int, [_void_p, _char_p]),
    "EVP_PKEY_get_bn_param": (_int, [_void_p, _char_p, ctypes.POINTER(_void_p)]),
    "EVP_PKEY_get_octet_string_param": (_int, [_void_p, _char_p, _char_p, _size_t,
                                               ctypes.POINTER(_size_t)]),
    "BN_bn2binpad": (_int, [_void_p, _char_p, _int]),
    "BN_clear_free": (None, [_void_p]),
    "d2i_PUBKEY": (_void_p, [_void_p, ctypes.POINTER(_char_p), ctypes.c_long]),
    "d2i_AutoPrivateKey": (_void_p, [_void_p, ctypes.POINTER(_char_p), ctypes.c_long]),
    "EVP_MD_CTX_new": (_void_p, []),
    "EVP_MD_CTX_free": (None, [_void_p]),
    "EVP_DigestSignInit_ex": (_int, [_void_p, ctypes.POINTER(_void_p), _char_p, _void_p, _char_p,
                                     _void_p, _void_p]),
    "EVP_DigestSign": (_int, [_void_p, _char_p, ctypes.POINTER(_size_t), _char_p, _size_t]),
    "EVP_DigestVerifyInit_ex": (_int, [_void_p, ctypes.POINTER(_void_p), _char_p, _void_p, _char_p,
                                       _void_p, _void_p]),
    "EVP_PKEY_CTX_set1_id": (_int, [_void_p, _char_p, _int]),
    "EVP_DigestVerify": (_int, [_void_p, _char_p, _size_t, _char_p, _size_t]),
    "EVP_PKEY_encrypt_init": (_int, [_void_p]),
    "EVP_PKEY_encrypt": (_int, [_void_p, _char_p, ctypes.POINTER(_size_t), _char_p, _size_t]),
    "EVP_PKEY_decrypt_init": (_int, [_void_p]),
    "EVP_PKEY_decrypt": (_int, [_void_p, _char_p, ctypes.POINTER(_size_t), _char_p, _size_t]),
}


def _candidate_paths() -> Iterator[str]:
    """Where libcrypto may be: an explicit path, the linker's choice, then hashlib's own copy."""
    if explicit := os.environ.get("GM_LIBCRYPTO"):
        yield explicit
    if found := ctypes.util.find_library("crypto"):
        yield found
    try:
        import _hashlib
    except ImportError:
        return
    with contextlib.suppress(OSError), open("/proc/self/maps") as maps:
        for line in maps:
            path = line.rsplit(None, 1)[-1]
            if os.path.basename(path).startswith("libcrypto"):
                yield path
    # dlsym on the extension module also searches the libraries it was linked with.
    yield _hashlib.__file__


def _bind(path: str) -> Any:
    lib = ctypes.CDLL(path)
    for name, (restype, argtypes) in _SIGNATURES.items():
        func = getattr(lib, name)  # AttributeError: not OpenSSL 3
        func.restype = restype
        func.argtypes = argtypes
    if lib.OpenSSL_version_num() < 0x30000000:
        raise OSError("OpenSSL 3.0 or later is required")
    return lib


class _Handle:
    """An EVP_PKEY owned by Python: freed when the last reference goes."""

    __slots__ = ("_free", "ptr")

    def __init__(self, ptr: int, free: Any) -> None:
        self.ptr = ptr
        self._free = free

    def __del__(self) -> None:
        if self.ptr:
            self._free(self.ptr)
            self.ptr = 0


class OpenSSLBackend:
    """SM2 on libcrypto. One instance per process; safe to share between threads."""

    key = "openssl"

    def __init__(self) -> None:
        self._public: OrderedDict[bytes, _Handle] = OrderedDict()
        self._lock = threading.Lock()
        errors = []
        for path in dict.fromkeys(_candidate_paths()):
            try:
                self._lib = _bind(path)
                self._self_test()
            except (OSError, AttributeError, RuntimeError, ValueError) as exc:
                errors.append(f"{path}: {exc}")
                continue
            self.path = path
            break
        else:
            raise BackendUnavailable("no libcrypto with SM2 found (" + "; ".join(errors or ["none"]) + ")")
        version = self._lib.OpenSSL_version(0).decode().split()
        self.name = f"openssl {version[1] if len(version) > 1 else '?'} (libcrypto)"

    # --- keys ---------------------------------------------------------------------------

    def _check(self, ok: int, what: str) -> None:
        if ok != 1:
            self._lib.ERR_clear_error()
            raise RuntimeError(f"libcrypto: {what} failed")

    def _decode(self, der: bytes, private: bool) -> _Handle:
        lib = self._lib
        cursor = _char_p(der)
        decoder = lib.d2i_AutoPrivateKey if private else lib.d2i_PUBKEY
        ptr = decoder(None, ctypes.byref(cursor), len(der))
        if not ptr:
            lib.ERR_clear_error()
            raise ValueError("libcrypto rejected the key")
        handle = _Handle(ptr, lib.EVP_PKEY_free)
        if lib.EVP_PKEY_is_a(ptr, b"SM2") != 1:
            raise ValueError("libcrypto did not load the key as SM2")
        return handle

    def load_public(self, point: bytes) -> _Handle:
        # Parsing an EVP_PKEY costs about as much as a verification, so keep the recent ones.
        with self._lock:
            handle = self._public.get(point)
            if handle is not None:
                self._public.move_to_end(point)
                return handle
        handle = self._decode(_asn1.spki(point), private=False)
        with self._lock:
            self._public[point] = handle
            if len(self._public) > _PUBLIC_CACHE_SIZE:
                self._public.popitem(last=False)
        return handle

    def load_private(self, d: int, point: bytes) -> _Handle:
        return self._decode(_asn1.pkcs8(d, point), private=True)

    def _export(self, handle: _Handle) -> tuple[int, bytes]:
        lib = self._lib
        bn = _void_p()
        self._check(lib.EVP_PKEY_get_bn_param(handle.ptr, b"priv", ctypes.byref(bn)), "get priv")
        raw = ctypes.create_string_buffer(32)
        try:
            written = lib.BN_bn2binpad(bn, raw, 32)
        finally:
            lib.BN_clear_free(bn)
        point = ctypes.create_string_buffer(65)
        size = _size_t(0)
        self._check(lib.EVP_PKEY_get_octet_string_param(handle.ptr, b"pub", point, 65, ctypes.byref(size)),
                    "get pub")
        if written != 32 or size.value != 65 or point.raw[0] != 4:
            raise RuntimeError("libcrypto: unexpected key export")
        return int.from_bytes(raw.raw, "big"), point.raw

    def generate(self) -> tuple[int, bytes]:
        lib = self._lib
        ctx = lib.EVP_PKEY_CTX_new_from_name(None, b"SM2", None)
        if not ctx:
            raise RuntimeError("libcrypto: no SM2 key manager")
        try:
            while True:
                self._check(lib.EVP_PKEY_keygen_init(ctx), "keygen init")
                out = _void_p()
                self._check(lib.EVP_PKEY_generate(ctx, ctypes.byref(out)), "keygen")
                d, point = self._export(_Handle(out.value or 0, lib.EVP_PKEY_free))
                if d < N - 1:  # SM2 needs 1+d invertible; older OpenSSL could return n-1
                    return d, point
        finally:
            lib.EVP_PKEY_CTX_free(ctx)

    def public_from_private(self, d: int) -> bytes:
        # d2i of an ECPrivateKey without its public key makes libcrypto compute d·G (constant time).
        return self._export(self._decode(_asn1.pkcs8(d, None), private=True))[1]

    # --- signatures ---------------------------------------------------------------------

    def _init(self, md: int, handle: _Handle, uid: bytes, verify: bool) -> bool:
        """Digest-sign/verify init with SM3, then the ID: 3.0 refuses "distid" among init params."""
        lib = self._lib
        pctx = _void_p()
        init = lib.EVP_DigestVerifyInit_ex if verify else lib.EVP_DigestSignInit_ex
        if init(md, ctypes.byref(pctx), b"SM3", None, None, handle.ptr, None) != 1 \
                or lib.EVP_PKEY_CTX_set1_id(pctx, uid, len(uid)) != 1:
            lib.ERR_clear_error()
            return False
        return True

    def sign(self, handle: _Handle, message: bytes, uid: bytes) -> tuple[int, int]:
        lib = self._lib
        md = lib.EVP_MD_CTX_new()
        try:
            if not self._init(md, handle, uid, verify=False):
                raise RuntimeError("libcrypto: SM2 sign init failed")
            sig = ctypes.create_string_buffer(_MAX_SIG)
            size = _size_t(_MAX_SIG)
            self._check(lib.EVP_DigestSign(md, sig, ctypes.byref(size), message, len(message)), "sign")
        finally:
            lib.EVP_MD_CTX_free(md)
        return _asn1.parse_signature_der(sig.raw[:size.value])

    def verify(self, point: bytes, message: bytes, uid: bytes, r: int, s: int) -> bool:
        lib = self._lib
        handle = self.load_public(point)
        sig = _asn1.signature_der(r, s)
        md = lib.EVP_MD_CTX_new()
        try:
            if not self._init(md, handle, uid, verify=True):
                return False
            ok = lib.EVP_DigestVerify(md, sig, len(sig), message, len(message))
        finally:
            lib.EVP_MD_CTX_free(md)
        if ok != 1:
            lib.ERR_clear_error()
        return ok == 1

    # --- encryption ---------------------------------------------------------------------

    def _crypt(self, handle: _Handle, data: bytes, encrypt: bool) -> bytes | None:
        lib = self._lib
        init, run = ((lib.EVP_PKEY_encrypt_init, lib.EVP_PKEY_encrypt) if encrypt
                     else (lib.EVP_PKEY_decrypt_init, lib.EVP_PKEY_decrypt))
        ctx = lib.EVP_PKEY_CTX_new_from_pkey(None, handle.ptr, None)
        if not ctx:
            raise RuntimeError("libcrypto: cannot make a key context")
        try:
            self._check(init(ctx), "crypt init")
            size = _size_t(0)
            if run(ctx, None, ctypes.byref(size), data, len(data)) != 1:
                lib.ERR_clear_error()
                return None
            out = ctypes.create_string_buffer(size.value)
            if run(ctx, out, ctypes.byref(size), data, len(data)) != 1:
                lib.ERR_clear_error()
                return None
            return out.raw[:size.value]
        finally:
            lib.EVP_PKEY_CTX_free(ctx)

    def encrypt(self, point: bytes, plaintext: bytes) -> bytes:
        der = self._crypt(self.load_public(point), plaintext, encrypt=True)
        if der is None:
            raise RuntimeError("libcrypto: SM2 encryption failed")
        return _asn1.parse_ciphertext_der(der)

    def decrypt(self, handle: _Handle, ciphertext: bytes) -> bytes:
        plaintext = self._crypt(handle, _asn1.ciphertext_der(ciphertext), encrypt=False)
        if plaintext is None:
            raise DecryptionError("SM2 decryption failed: wrong key or altered ciphertext")
        return plaintext

    def _self_test(self) -> None:
        """A libcrypto built without SM2 (or too old) fails here, before anything relies on it."""
        d, point = self.generate()
        key = self.load_private(d, point)
        r, s = self.sign(key, b"gm self-test", b"1234567812345678")
        if not self.verify(point, b"gm self-test", b"1234567812345678", r, s):
            raise RuntimeError("SM2 self-test failed")
        if self.verify(point, b"gm self-test", b"1234567812345679", r, s):
            raise RuntimeError("libcrypto ignores the SM2 distinguishing ID")
