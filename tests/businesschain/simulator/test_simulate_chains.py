"""`simulate_chains` end to end: the management command against the application served by uvicorn
(in a thread of the test process, so it shares the test database on SQLite and PostgreSQL)."""

from __future__ import annotations

import io
import json
import os
import socket
import stat
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn
from django.core.management import call_command
from django.db import connection

from businesschain.models import Block, Chain, NodeSet, RejectedSubmission, Trade

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]
CHAINS = ("sse", "szse", "sac")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def served_url(monkeypatch) -> Iterator[str]:
    # Request threads close their connections when a request ends, so none outlives the test.
    monkeypatch.setitem(connection.settings_dict, "CONN_MAX_AGE", 0)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config("config.asgi:application", host="127.0.0.1", port=port,
                                           lifespan="off", log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def simulate(url: str, state_dir, *extra: str) -> str:
    out = io.StringIO()
    call_command("simulate_chains", "--url", url, "--once", "--state-dir", str(state_dir), "--retail", "60",
                 "--block-size", "20", "--seed", "11", *extra, stdout=out)
    return out.getvalue()


def rejections() -> list[tuple[str, str]]:
    return sorted(RejectedSubmission.objects.values_list("chain_id_text", "code"))


def test_one_round_stores_blocks_on_three_chains_and_plants_every_pattern(served_url, tmp_path) -> None:
    output = simulate(served_url, tmp_path)

    assert "0 unexpected answers" in output, output
    for chain_id in CHAINS:
        chain = Chain.objects.get(id=chain_id)
        stored = Block.objects.filter(chain=chain).count()
        assert stored >= 7 and chain.head_height == stored - 1
        assert Trade.objects.filter(chain=chain).exists()
        lines = [line for line in output.splitlines() if f"[{chain_id} #" in line]
        for pattern, answer in (("wash_trade", "201 accepted"), ("trade_ring", "201 accepted"),
                                ("circular_holding", "201 accepted"), ("threshold_crossing", "201 accepted"),
                                ("related_party_trade", "201 accepted"),
                                ("forged_signature", "422 bad_signature"), ("fork", "409 fork")):
            assert any(f"] {pattern}" in line and f"→ {answer} (as expected)" in line for line in lines), (
                pattern, lines)
    assert rejections() == sorted((c, code) for c in CHAINS for code in ("bad_signature", "fork"))
    assert all(r.extra["consensus_failure"] for r in RejectedSubmission.objects.filter(code="fork"))
    assert output.count("(as expected)") == 7 * 3

    keys = json.loads((tmp_path / "sse.json").read_text())
    assert set(keys["nodes"]) == {f"sse-node-{i}" for i in range(1, 5)} and keys["setup_done"]
    assert stat.S_IMODE(os.stat(tmp_path / "sse.json").st_mode) == 0o600

    # A restart continues each chain from its head; a lost key file re-keys that chain.
    heads = dict(Chain.objects.values_list("id", "head_height"))
    (tmp_path / "sac.json").unlink()
    output = simulate(served_url, tmp_path, "--patterns", "wash_trade")

    assert "0 unexpected answers" in output, output
    assert "上证链 resumed" in output and "证联链 re-keyed" in output
    for chain_id, height in Chain.objects.values_list("id", "head_height"):
        assert height > heads[chain_id]
    assert NodeSet.objects.get(chain_id="sac", version=2).valid_from_height == heads["sac"] + 1
    assert len(rejections()) == 6
