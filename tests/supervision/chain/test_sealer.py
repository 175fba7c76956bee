"""The sealer: one winner among concurrent sealers, nothing half-written when it dies mid-seal,
the loop's timing rules, and the on-demand command."""

from __future__ import annotations

import io
import threading
from collections import Counter

import pytest
from django.core.management import call_command
from django.db import connection, connections

from supervision import anchoring
from supervision.anchoring import Sealer, anchors_create, anchors_sweep, supervision_block_seal
from supervision.audit import audit_chains
from supervision.models import Anchor, SupervisionBlock, SupervisionHead
from tests.supervision.chain.conftest import push


def fake_anchors(count: int, chain: str = "sim", start: int = 0) -> None:
    """Anchors of blocks that are not stored (the sealer only needs the anchor rows)."""
    heights = list(range(start, start + count))
    anchors_create(chain_id=chain, heights=heights, block_hashes=[f"{h:064x}" for h in heights])


@pytest.mark.django_db
@pytest.mark.parametrize("fail_at", ["sign", "assign", "head"])
def test_a_sealer_dying_mid_seal_leaves_nothing_half_written(client, sse, monkeypatch, fail_at):
    push(client, sse, blocks=3, txs=1)
    anchors_sweep()
    assert supervision_block_seal(max_anchors=1).height == 0
    before = (SupervisionHead.objects.get().height, SupervisionHead.objects.get().block_hash)

    class Killed(Exception):
        pass

    def boom(*args, **kwargs):
        raise Killed

    if fail_at == "sign":
        monkeypatch.setattr(anchoring.keys.SigningKey, "sign", boom)
    elif fail_at == "assign":
        real = anchoring._assign_anchors

        def assign_then_die(block_id, ids):
            real(block_id, ids)  # the anchors are already pointed at the new block…
            raise Killed  # …when the process dies

        monkeypatch.setattr(anchoring, "_assign_anchors", assign_then_die)
    else:
        monkeypatch.setattr(SupervisionHead, "save", boom)
    with pytest.raises(Killed):
        supervision_block_seal()
    monkeypatch.undo()
    assert SupervisionBlock.objects.count() == 1
    assert (SupervisionHead.objects.get().height, SupervisionHead.objects.get().block_hash) == before
    assert Anchor.objects.filter(supervision_block__isnull=True, leaf_index__isnull=True).count() == 2
    result = supervision_block_seal()
    assert (result.height, result.anchor_count) == (1, 2)
    assert audit_chains(record=False).ok


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_sealers_never_seal_the_same_anchor_twice():
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: SQLite serialises whole transactions, so there is no row lock to race "
                    "on (CI runs this on PostgreSQL)")
    fake_anchors(600)
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def sealer(results: list) -> None:
        try:
            start.wait()
            while True:
                result = supervision_block_seal(max_anchors=7)
                if result is None:
                    if not Anchor.objects.filter(supervision_block__isnull=True).exists():
                        return
                    continue
                results.append(result.height)
        except BaseException as error:
            errors.append(error)
        finally:
            connections.close_all()

    first: list[int] = []
    second: list[int] = []
    threads = [threading.Thread(target=sealer, args=(r,)) for r in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    assert first and second, "both sealers should have won some blocks"
    heights = sorted(first + second)
    assert heights == list(range(len(heights)))  # every height sealed once, no gap
    assert not Anchor.objects.filter(supervision_block__isnull=True).exists()
    positions = Counter(Anchor.objects.values_list("supervision_block_id", "leaf_index"))
    assert max(positions.values()) == 1 and sum(positions.values()) == 600
    assert sum(SupervisionBlock.objects.values_list("anchor_count", flat=True)) == 600
    report = audit_chains(record=False)
    assert report.supervision_blocks == len(heights)
    # the fake anchors name blocks that are not stored; the chain itself must be intact
    assert {m.what for m in report.mismatches} == {"anchor_block"}


@pytest.mark.django_db(transaction=True)
def test_a_sealer_that_skips_a_held_lock_returns_none():
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL row locks (CI runs this on PostgreSQL)")
    fake_anchors(3)
    SupervisionHead.objects.get_or_create(id=1)
    holding = threading.Event()
    release = threading.Event()

    def hold() -> None:
        from django.db import transaction

        with transaction.atomic():
            SupervisionHead.objects.select_for_update().get(id=1)
            holding.set()
            release.wait(10)
        connections.close_all()

    thread = threading.Thread(target=hold)
    thread.start()
    holding.wait(10)
    try:
        assert supervision_block_seal(wait=False) is None
    finally:
        release.set()
        thread.join()
    assert supervision_block_seal(wait=False).anchor_count == 3


@pytest.mark.django_db
def test_sealer_loop_seals_pending_anchors_and_stops_on_request():
    fake_anchors(5)
    stop = threading.Event()
    sealed = []
    audits = []

    def on_seal(result):
        sealed.append(result)
        if sum(r.anchor_count for r in sealed) >= 12:
            stop.set()
        else:
            fake_anchors(7 if len(sealed) == 1 else 0, start=100)

    Sealer(interval=0.01, max_pending=4, tick=0.001, stop=stop, on_seal=on_seal,
           audit_interval=3600, on_audit_due=lambda: audits.append(1)).run()
    assert [r.anchor_count for r in sealed] == [4, 4, 4]  # full blocks seal back to back
    assert audits == [1]  # the first scheduled audit is due at start


@pytest.mark.django_db
def test_sealer_loop_waits_the_interval_between_seals():
    fake_anchors(1)
    stop = threading.Event()
    sealed = []

    def on_seal(result):
        sealed.append(result)
        if len(sealed) == 1:
            fake_anchors(1, start=50)
        else:
            stop.set()

    import time

    started = time.monotonic()
    Sealer(interval=0.3, max_pending=100, tick=0.01, stop=stop, on_seal=on_seal).run()
    assert len(sealed) == 2 and time.monotonic() - started >= 0.3


@pytest.mark.django_db
def test_seal_command_seals_on_demand(client, sse):
    push(client, sse, blocks=5, txs=1)  # no anchors yet: the command sweeps first
    out = io.StringIO()
    call_command("seal_supervision_block", "--max-anchors", "2", stdout=out)
    assert "sealed supervision block 0" in out.getvalue()
    call_command("seal_supervision_block", "--all", "--max-anchors", "2", stdout=out)
    assert SupervisionBlock.objects.count() == 3
    call_command("seal_supervision_block", stdout=out)
    assert "nothing to seal" in out.getvalue()


@pytest.mark.django_db
def test_sealing_never_goes_back_in_time(client, sse):
    from datetime import timedelta

    from django.utils import timezone

    fake_anchors(2)
    later = timezone.now().replace(microsecond=0) + timedelta(seconds=30)
    supervision_block_seal(max_anchors=1, now=later)
    second = supervision_block_seal()
    assert SupervisionBlock.objects.get(height=second.height).timestamp == later
