"""`/ws/alerts/` through the real ASGI application: who may connect, what arrives, and that nothing
arrives before the transaction commits. Runs with the in-memory layer or, when REDIS_URL is set,
with channels-redis's pub/sub layer.

Consumers' database work runs on the test's thread (thread-sensitive `sync_to_async`), so most
tests share the test transaction and run its on-commit callbacks with
`django_capture_on_commit_callbacks`; one test commits for real."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.db import transaction

from supervision.services import alert_update
from tests.chainkit import TestChain
from tests.supervision.alerts.wsclient import WebsocketCommunicator

TIMEOUT = 3


def ws(cookie: str | None = None, path: str = "/ws/alerts/") -> WebsocketCommunicator:
    from config.asgi import application

    headers = [(b"origin", b"http://localhost")]
    if cookie:
        headers.append((b"cookie", f"sessionid={cookie}".encode()))
    return WebsocketCommunicator(application, path, headers=headers)


def session_of(client, user) -> str:
    client.force_login(user)
    return client.cookies["sessionid"].value


async def refused_with(communicator: WebsocketCommunicator) -> int:
    connected, _ = await communicator.connect(timeout=TIMEOUT)
    assert connected  # accepted first, so that browsers see the close code
    message = await communicator.receive_output(timeout=TIMEOUT)
    assert message["type"] == "websocket.close"
    await communicator.disconnect(code=message["code"])  # what the server does after a close
    return message["code"]


def close_code(cookie: str | None = None, path: str = "/ws/alerts/") -> int:
    return async_to_sync(refused_with)(ws(cookie, path))


def test_anonymous_connection_is_closed_with_4401(shared_connection):
    assert close_code() == 4401
    assert close_code("not-a-session") == 4401


def test_signed_in_non_regulator_is_closed_with_4403(client, outsider, shared_connection):
    assert close_code(session_of(client, outsider)) == 4403


def test_malformed_chain_parameter_is_closed_with_4400(client, regulator, shared_connection):
    assert close_code(session_of(client, regulator), "/ws/alerts/?chain=NOT%20A%20CHAIN") == 4400


@pytest.mark.django_db(transaction=True)
def test_regulator_receives_alert_created_only_after_commit_with_the_api_json(client, regulator,
                                                                               make_alert):
    cookie = session_of(client, regulator)

    async def scenario() -> tuple[dict, dict]:
        communicator = ws(cookie)
        connected, _ = await communicator.connect(timeout=TIMEOUT)
        assert connected
        atomic = transaction.atomic()
        await sync_to_async(atomic.__enter__)()
        try:
            alert = (await sync_to_async(make_alert)()).alert
            assert await communicator.receive_nothing(timeout=0.3)  # not committed yet
        finally:
            await sync_to_async(atomic.__exit__)(None, None, None)
        message = await communicator.receive_json_from(timeout=TIMEOUT)
        api = await sync_to_async(client.get)(f"/api/v1/alerts/{alert.pk}")
        await communicator.disconnect()
        return message, api.json()

    message, detail = async_to_sync(scenario)()
    assert message["type"] == "alert.created"
    event_alert = message["alert"]
    list_item = {k: v for k, v in detail.items() if k not in ("evidence", "history")}
    assert {k: v for k, v in event_alert.items() if k not in ("title_en", "detail_en")} == list_item
    assert set(event_alert) - set(list_item) == {"title_en", "detail_en"}
    assert event_alert["title"] == detail["title"]  # Chinese: the site's default language


def test_rolled_back_alert_is_never_sent(client, regulator, make_alert, shared_connection,
                                         django_capture_on_commit_callbacks):
    cookie = session_of(client, regulator)

    def raise_and_roll_back() -> None:
        with django_capture_on_commit_callbacks(execute=True) as callbacks, transaction.atomic():
            make_alert()
            transaction.set_rollback(True)
        assert callbacks == []

    async def scenario() -> bool:
        communicator = ws(cookie)
        await communicator.connect(timeout=TIMEOUT)
        await sync_to_async(raise_and_roll_back)()
        nothing = await communicator.receive_nothing(timeout=0.2)
        await communicator.disconnect()
        return nothing

    assert async_to_sync(scenario)()


def test_triage_sends_alert_updated(client, regulator, make_alert, shared_connection,
                                    django_capture_on_commit_callbacks):
    cookie = session_of(client, regulator)
    alert = make_alert().alert

    def triage() -> None:
        with django_capture_on_commit_callbacks(execute=True):
            alert_update(alert_id=alert.pk, by=regulator, status="acknowledged", note="seen")

    async def scenario() -> dict:
        communicator = ws(cookie)
        await communicator.connect(timeout=TIMEOUT)
        await sync_to_async(triage)()
        message = await communicator.receive_json_from(timeout=TIMEOUT)
        await communicator.disconnect()
        return message

    message = async_to_sync(scenario)()
    assert message["type"] == "alert.updated"
    assert (message["alert"]["id"], message["alert"]["status"]) == (alert.pk, "acknowledged")


def test_chain_parameter_limits_the_stream_to_that_chain(client, regulator, make_alert, shared_connection,
                                                         django_capture_on_commit_callbacks):
    cookie = session_of(client, regulator)

    def raise_three() -> None:
        with django_capture_on_commit_callbacks(execute=True):
            for chain in ("sse", "szse", ""):
                make_alert(chain_id=chain)

    async def drain(communicator: WebsocketCommunicator) -> list[str | None]:
        chains = []
        while not await communicator.receive_nothing(timeout=0.2):
            chains.append((await communicator.receive_json_from())["alert"]["chain"])
        await communicator.disconnect()
        return chains

    async def scenario() -> list[list[str | None]]:
        everything = ws(cookie)
        sse, szse = ws(cookie, "/ws/alerts/?chain=sse"), ws(cookie, "/ws/alerts/?chain=szse")
        for communicator in (everything, sse, szse):
            assert (await communicator.connect(timeout=TIMEOUT))[0]
        await sync_to_async(raise_three)()
        return [await drain(everything), await drain(sse), await drain(szse)]

    everything, sse, szse = async_to_sync(scenario)()
    assert sorted(everything, key=str) == sorted(["sse", "szse", None], key=str)
    assert (sse, szse) == (["sse"], ["szse"])


def test_accepted_blocks_push_throttled_chain_status_and_the_latest_state_follows(
    client, regulator, settings, shared_connection, django_capture_on_commit_callbacks,
):
    settings.CHAIN_STATUS_MIN_INTERVAL = 0.8
    chain = TestChain.register("sse")
    cookie = session_of(client, regulator)

    def submit() -> None:
        with django_capture_on_commit_callbacks(execute=True):
            chain.submit(client)

    async def scenario() -> tuple[dict, bool, dict, float, bool]:
        communicator = ws(cookie)
        await communicator.connect(timeout=TIMEOUT)
        loop = asyncio.get_running_loop()
        await sync_to_async(submit)()
        first = await communicator.receive_json_from(timeout=TIMEOUT)
        sent = loop.time()
        await sync_to_async(submit)()
        await sync_to_async(submit)()
        throttled = await communicator.receive_nothing(timeout=0.1)
        latest = await communicator.receive_json_from(timeout=TIMEOUT)
        waited = loop.time() - sent
        quiet = await communicator.receive_nothing(timeout=0.2)
        await communicator.disconnect()
        return first, throttled, latest, waited, quiet

    first, throttled, latest, waited, quiet = async_to_sync(scenario)()
    assert first["type"] == "chain.status"
    summary = first["chain"]
    assert (summary["chain"], summary["height"], summary["status"]) == ("sse", 0, "active")
    assert throttled and quiet
    assert latest["type"] == "chain.status" and latest["chain"]["height"] == 2  # one event, latest state
    assert waited >= 0.6
