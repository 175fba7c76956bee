"""Fixtures for the supervision-chain tests: a private supervisor key file per test, and chains
that push real signed blocks through the HTTP API."""

from __future__ import annotations

import pytest

from gm import sm2
from supervision import keys
from tests.chainkit import Ids, TestChain

ids = Ids(23)
ISSUER = ids.org()


@pytest.fixture(autouse=True)
def fast_password_hasher(settings):
    """The `regulator` fixture hashes a password; PBKDF2 would cost half a second per test."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def supervisor_key_file(tmp_path, settings):
    """A supervisor key file of this test's own (tests run with DEBUG off: nothing is generated)."""
    path = tmp_path / "supervisor_key.pem"
    path.write_bytes(sm2.generate_private_key().to_pem())
    settings.SUPERVISOR_KEY_FILE = str(path)
    keys.forget_cached_key()
    yield tmp_path / "supervisor_key.pem"
    keys.forget_cached_key()


def evidence(chain: TestChain, count: int = 1, tag: str = "doc") -> list[dict]:
    return [chain.tx("evidence", {"business_type": "contract", "reference": f"{tag}-{i}",
                                  "doc_sm3": f"{i:064x}"}) for i in range(count)]


def push(client, chain: TestChain, blocks: int = 1, txs: int = 2) -> list[dict]:
    """Submit `blocks` blocks of `txs` evidence transactions each; return them."""
    return [chain.submit(client, evidence(chain, txs, tag=f"{chain.chain_id}-{chain.height + 1}"))
            for _ in range(blocks)]


@pytest.fixture
def sse(db) -> TestChain:
    return TestChain.register("sse")


@pytest.fixture
def szse(db) -> TestChain:
    return TestChain.register("szse", name="深证链")
