"""The dashboard in a real headless Chromium (Debian's /usr/bin/chromium driven by Playwright),
served by uvicorn in a thread of the test process so websockets work (see asgi_server.py).

Screenshots go to var/screens/ for a human to look at.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
from django.db import connections
from django.test import Client
from django.urls import reverse

from supervision.models import Alert
from supervision.services import alert_raise

from .asgi_server import LiveServer
from .conftest import ORG_A, PERSON

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENS = Path(settings.BASE_DIR) / "var" / "screens"
TIMEOUT_MS = 10_000


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).exists() or shutil.which(CHROMIUM) is None:
        pytest.skip("Chromium is not installed at /usr/bin/chromium (CI installs it in .ci/run)")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop marked as running in this thread, which makes
    # Django refuse ORM calls here (database flushes, fixtures) while the browser is open.
    with pytest.MonkeyPatch.context() as patch, sync_playwright() as playwright:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def asgi_server(transactional_db) -> Iterator[LiveServer]:
    """uvicorn serving config.asgi.application (HTTP + websockets) with static files from the
    finders, against the test database."""
    from channels.layers import InMemoryChannelLayer, get_channel_layer

    from config.asgi import application

    database = connections["default"].settings_dict
    max_age = database.get("CONN_MAX_AGE", 0)
    database["CONN_MAX_AGE"] = 0  # server threads close their connections after each request
    server = LiveServer(ASGIStaticFilesHandler(application))
    server.start()
    layer = get_channel_layer()
    if isinstance(layer, InMemoryChannelLayer):  # forget consumers other tests left behind
        server.call(lambda: None)
        layer.channels.clear()
        layer.groups.clear()
    yield server
    server.stop()
    database["CONN_MAX_AGE"] = max_age


@pytest.fixture
def page(browser, asgi_server) -> Iterator[object]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, locale="zh-CN",
                                  timezone_id="Asia/Shanghai")
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.problems = []  # console errors (CSP violations show up here) and uncaught exceptions
    page.on("console", lambda m: m.type == "error" and page.problems.append(m.text))
    page.on("pageerror", lambda e: page.problems.append(str(e)))
    yield page
    context.close()


def _log_in_with_cookie(page, server: LiveServer, user) -> None:
    client = Client()
    client.force_login(user)
    page.context.add_cookies([{
        "name": settings.SESSION_COOKIE_NAME, "value": client.cookies[settings.SESSION_COOKIE_NAME].value,
        "url": server.url,
    }])


def _bar(page, severity: str, status: str) -> int:
    """The alerts-by-severity chart's count for one severity and status, as drawn."""
    return page.evaluate(
        """([severity, status]) => {
            const chart = document.querySelector('[data-figure="severity-figure"]');
            const trace = chart.data.find(t => t.meta.status === status);
            return trace.y[chart.layout.meta.severities.indexOf(severity)];
        }""",
        [severity, status],
    )


def _next_block(world) -> None:
    """Store block 3 of `sse` and announce the chain's new status, as ingestion would."""
    from django.utils import timezone

    from businesschain.models import Block, Chain
    from supervision.realtime.publish import publish_chain_status

    now = timezone.now()
    last = world.blocks[-1]
    Block.objects.create(chain_id="sse", height=3, block_hash="3" * 64, prev_hash=last.block_hash,
                         timestamp=now, tx_count=0, tx_root="e" * 64, signatures=last.signatures,
                         node_set_id=last.node_set_id, verification=last.verification, received_at=now)
    Chain.objects.filter(id="sse").update(head_height=3, head_hash="3" * 64, last_block_at=now,
                                          head_timestamp=now)
    publish_chain_status("sse")


def _screenshot(page, name: str) -> None:
    SCREENS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENS / f"{name}.png"), full_page=True)


def test_overview_shows_a_new_alert_live_without_reload(page, asgi_server, regulator, world):
    page.goto(f"{asgi_server.url}/")
    assert "/accounts/login/" in page.url
    page.fill("#id_username", "analyst")
    page.fill("#id_password", "analyst-pass-123")
    page.click("button[type=submit].primary")
    page.wait_for_url(f"{asgi_server.url}/")
    page.wait_for_selector('#live-state[data-state="connected"]')
    page.wait_for_selector('[data-figure="blocks-figure"][data-drawn="true"]')
    page.wait_for_selector('[data-figure="severity-figure"][data-drawn="true"]')
    page.evaluate("window.__sameDocument = true")  # gone if the page reloads

    alert = asgi_server.call(
        alert_raise,
        code="fork", severity="critical", fingerprint="fork:sse:2:test",
        title_zh="业务链 sse 分叉：高度 2 出现两个达到法定签名数的区块",
        title_en="Chain sse forked: two blocks with a valid quorum at height 2",
        detail_zh="共识失效。", detail_en="A consensus failure.", chain_id="sse", block_height=2,
    ).alert

    item = page.wait_for_selector(f'#alert-feed li[data-alert-id="{alert.pk}"]')
    assert "业务链 sse 分叉" in item.inner_text()
    assert "严重" in item.inner_text()  # the severity label in the page's language
    assert page.evaluate("window.__sameDocument") is True
    assert page.locator("#alert-feed li").first.get_attribute("data-alert-id") == str(alert.pk)
    assert _bar(page, "critical", "open") == 1  # counted in the chart too

    asgi_server.call(_next_block, world)
    page.wait_for_selector('tr[data-chain="sse"] [data-field="height"] a:text-is("3")')
    assert page.evaluate(
        "document.querySelector('[data-figure=\"blocks-figure\"]').data.find(t => t.name === 'sse').y.at(-1)"
    ) >= 1

    asgi_server.call(lambda: Alert.objects.filter(pk=alert.pk).update(status="acknowledged"))
    from supervision.realtime.publish import publish_alert

    asgi_server.call(lambda: publish_alert(Alert.objects.get(pk=alert.pk), "alert.updated"))
    status = page.wait_for_selector(f'#alert-feed li[data-alert-id="{alert.pk}"] .status-acknowledged')
    assert status.inner_text() == "已确认"
    assert (_bar(page, "critical", "open"), _bar(page, "critical", "acknowledged")) == (0, 1)
    page.wait_for_timeout(300)  # let the highlight fade a little for the screenshot
    _screenshot(page, "overview")
    assert page.problems == []


def test_alert_triage_entity_graph_and_english(page, asgi_server, regulator, world):
    alert = asgi_server.call(
        alert_raise,
        code="related_party_trade", severity="medium", fingerprint="rpt:test",
        title_zh="关联方交易：甲科技股份有限公司", title_en="Related-party trade: Jia Technology",
        detail_zh="买卖双方为关联方。", detail_en="Buyer and seller are related parties.",
        chain_id="sse", block_height=2, tx_ids=[world.transactions[2].tx_id], entities=[ORG_A, PERSON],
    ).alert
    _log_in_with_cookie(page, asgi_server, regulator)

    page.goto(f"{asgi_server.url}{reverse('supervision:alert-detail', args=[alert.pk])}")
    page.fill("#id_note", "已核实")
    page.click("button[value=acknowledge]")
    page.wait_for_selector("#alert-status.status-acknowledged")
    assert "已核实" in page.inner_text("#history")
    _screenshot(page, "alert")

    page.click(f"#evidence a:has-text('{'甲科技股份有限公司'}')")
    page.wait_for_selector('[data-figure="graph-figure"][data-drawn="true"]')
    assert page.locator("#graph-figure + .figure .scatterlayer .point").count() >= 3
    masked = page.inner_text("#beneficial-owners")
    assert "张三" in masked and PERSON not in page.content()
    _screenshot(page, "entity")

    page.click("header .lang button[value=en]")
    page.wait_for_selector("html[lang=en]")
    assert "Beneficial owners" in page.inner_text("#beneficial-owners")
    assert re.search(r"Ownership structure", page.inner_text("#ownership-graph"))
    page.goto(f"{asgi_server.url}/")
    page.wait_for_selector('#live-state[data-state="connected"]')
    assert "Supervision overview" in page.inner_text("h1")
    assert "Related-party trade: Jia Technology" in page.inner_text("#alert-feed")
    _screenshot(page, "overview-en")
    assert page.problems == []


def _expire_session(user) -> None:
    from django.contrib.sessions.models import Session

    Session.objects.all().delete()


def _revoke_regulator(user) -> None:
    user.groups.clear()


@pytest.mark.parametrize(("change", "state", "notice"), [
    (_expire_session, "expired", "会话已过期，实时推送已停止。"),
    (_revoke_regulator, "forbidden", "无权接收实时推送，实时推送已停止。"),
])
def test_live_updates_stop_with_a_notice_when_the_server_refuses_the_reconnect(
        page, asgi_server, regulator, world, change, state, notice):
    attempts = []

    def route(ws) -> None:
        attempts.append(ws)
        ws.connect_to_server()  # the real consumer decides

    page.route_web_socket("**/ws/alerts/", route)
    _log_in_with_cookie(page, asgi_server, regulator)
    page.goto(f"{asgi_server.url}/")
    page.wait_for_selector('#live-state[data-state="connected"]')
    change(regulator)
    attempts[0].close(code=1012, reason="service restart")  # the page reconnects…
    shown = page.wait_for_selector(f'#live-state[data-state="{state}"]')  # …and is refused (4401/4403)
    assert shown.inner_text().startswith(notice)
    assert shown.get_attribute("role") == "alert"
    page.wait_for_timeout(3_000)  # the old script retried every second
    assert len(attempts) == 2
    assert page.get_attribute("#live-state", "data-state") == state
    if state == "expired":
        page.click("#live-state a")  # "重新登录": the login page, back to the overview after it
        page.wait_for_url(re.compile(r"/accounts/login/\?next=%2F$"))
        assert page.is_visible("#id_username")
    assert page.problems == []


def test_other_closes_reconnect_with_growing_delays(page, asgi_server, regulator, world):
    """A server that accepts and at once closes (an overloaded or restarting worker) is retried
    after about 1 s, 2 s, 4 s … (±25 %), not every second."""
    import time

    attempts: list[float] = []
    routes = []

    def route(ws) -> None:
        attempts.append(time.monotonic())
        routes.append(ws)
        if len(routes) == 1:
            ws.connect_to_server()

    page.route_web_socket("**/ws/alerts/", route)
    _log_in_with_cookie(page, asgi_server, regulator)
    page.goto(f"{asgi_server.url}/")
    page.wait_for_selector('#live-state[data-state="connected"]')
    page.evaluate("window.__sameDocument = true")
    dropped = time.monotonic()
    routes[0].close(code=1012, reason="service restart")
    closed = 1
    while time.monotonic() < dropped + 4.5:  # each retry is accepted (the page sees it open), then closed
        page.wait_for_timeout(50)
        if len(routes) > closed and page.get_attribute("#live-state", "data-state") == "connected":
            routes[closed].close(code=1011, reason="try again later")
            closed += 1
    page.wait_for_selector('#live-state[data-state="disconnected"]')
    retries = [at - dropped for at in attempts[1:]]
    # Retries at ~1 s and ~1 + 2 s; the third is not due before 1 + 2 + 3 s (delays jittered ±25 %).
    assert len(retries) == 2, retries
    assert 0.7 <= retries[0] <= 1.6, retries
    assert retries[1] - retries[0] >= 1.4, retries
    assert page.evaluate("window.__sameDocument") is True
    assert page.problems == []
