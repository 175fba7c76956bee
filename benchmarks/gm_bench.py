"""gm throughput on one core, beside `openssl speed` run from this process (about 15 s).

    .venv/bin/python benchmarks/gm_bench.py

Targets (issue): SM2 verify ≥ 1,000/s, SM3 ≥ 200 MB/s on 1 MiB inputs. MB = 10⁶ bytes.
`openssl speed sm2` signs and verifies a bare digest; gm's figures include Z_A and SM3 of the
message, as real use does.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import gm
from gm import envelope, sm2, sm3, sm4

MIB = 1 << 20
BUDGET_S = 1.0


def rate(operation: Callable[[], object], budget: float = BUDGET_S) -> float:
    """Operations per second over about `budget` seconds (after one warm-up call)."""
    operation()
    count = 0
    start = time.perf_counter()
    while (elapsed := time.perf_counter() - start) < budget:
        operation()
        count += 1
    return count / elapsed


def openssl_speed(*args: str) -> str:
    """stdout of `openssl speed -seconds 1 …`, or "" if the command is missing or refuses."""
    binary = shutil.which("openssl")
    if binary is None:
        return ""
    done = subprocess.run([binary, "speed", "-seconds", "1", *args], capture_output=True, text=True,
                          check=False, timeout=60)
    return done.stdout if done.returncode == 0 else ""


def openssl_mb_per_s(cipher: str) -> float | None:
    """MB/s of `openssl speed -evp <cipher>` on 1 MiB blocks (it reports thousands of bytes/s)."""
    out = openssl_speed("-bytes", str(MIB), "-evp", cipher)
    match = re.search(rf"^{re.escape(cipher)}\s+([\d.]+)k\s*$", out, re.IGNORECASE | re.MULTILINE)
    return float(match.group(1)) / 1000 if match else None


def openssl_sm2() -> tuple[float | None, float | None]:
    """(sign/s, verify/s) of `openssl speed sm2`."""
    match = re.search(r"SM2 \(CurveSM2\)\s+\S+\s+\S+\s+([\d.]+)\s+([\d.]+)", openssl_speed("sm2"))
    return (float(match.group(1)), float(match.group(2))) if match else (None, None)


class NullSink(io.RawIOBase):
    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        return len(data)


def row(label: str, ours: float, unit: str, theirs: float | None, reference: str) -> None:
    ratio = f"{ours / theirs:5.2f}" if theirs else "    –"
    openssl = f"{theirs:10,.0f}" if theirs else "         –"
    print(f"{label:<28}{ours:10,.0f} {unit:<8}{openssl}   {ratio}   {reference}")


def main() -> None:
    started = time.perf_counter()
    print(f"gm SM2 backend: {gm.backend_name()}; Python {sys.version.split()[0]}; one core, "
          f"{BUDGET_S:.0f} s per figure")
    print(f"{'figure':<28}{'gm':>10} {'unit':<8}{'openssl':>10}   ratio   openssl reference")

    data = os.urandom(MIB)
    sm3_rate = rate(lambda: sm3.sm3_digest(data)) * MIB / 1e6
    row("SM3, 1 MiB inputs", sm3_rate, "MB/s", openssl_mb_per_s("sm3"), "speed -evp sm3 -bytes 1048576")

    key, nonce = os.urandom(16), os.urandom(12)
    gcm_rate = rate(lambda: sm4.encrypt_gcm(key, nonce, data)) * MIB / 1e6
    sm4_reference, sm4_cipher = openssl_mb_per_s("sm4-gcm"), "sm4-gcm"
    if sm4_reference is None:  # OpenSSL 3.0 has no SM4-GCM; CTR is GCM's cipher half
        sm4_reference, sm4_cipher = openssl_mb_per_s("sm4-ctr"), "sm4-ctr (no sm4-gcm in this openssl)"
    row("SM4-GCM encrypt, 1 MiB", gcm_rate, "MB/s", sm4_reference, f"speed -evp {sm4_cipher}")

    private = sm2.generate_private_key()
    public = private.public_key()
    message = os.urandom(256)
    signature = private.sign(message)
    assert public.verify(message, signature)
    openssl_sign, openssl_verify = openssl_sm2()
    row("SM2 sign (256 B message)", rate(lambda: private.sign(message)), "/s", openssl_sign, "speed sm2")
    row("SM2 verify (256 B message)", rate(lambda: public.verify(message, signature)), "/s",
        openssl_verify, "speed sm2")
    if gm.backend_name().startswith("openssl") and "gmssl" in gm.available_backends():
        with gm.use_backend("gmssl"):
            gmssl_verify = rate(lambda: public.verify(message, signature), budget=0.5)
        row("  fallback: gmssl verify", gmssl_verify, "/s", openssl_verify, "speed sm2")

    size = 64 * MIB
    sealed_mb = []
    for _ in range(2):
        source = io.BytesIO(os.urandom(size))
        start = time.perf_counter()
        envelope.seal_stream(source, NullSink(), [public])
        sealed_mb.append(size / (time.perf_counter() - start) / 1e6)
    row("envelope seal, 64 MiB", max(sealed_mb), "MB/s", sm4_reference, f"speed -evp {sm4_cipher.split()[0]}")

    print(f"targets: SM2 verify ≥ 1,000/s, SM3 ≥ 200 MB/s. Total {time.perf_counter() - started:.0f} s.")


if __name__ == "__main__":
    main()
