"""Dashboard pages through the Django test client: access, content, masking, triage, language."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from businesschain.models import RejectedSubmission
from businesschain.protocol.identifiers import mask_prc_id
from supervision.models import Alert, AlertHistory
from supervision.services import alert_raise

from .conftest import ORG_A, ORG_B, PERSON

pytestmark = pytest.mark.django_db


def _alert(world, **overrides) -> Alert:
    fields = {
        "code": "wash_trade", "severity": "high", "fingerprint": "wash_trade:test",
        "title_zh": "对倒交易：账户 A000000001", "title_en": "Wash trade: account A000000001",
        "detail_zh": "买卖双方属于同一控制关系组。",
        "detail_en": "Buyer and seller are in one control group.",
        "chain_id": "sse", "block_height": 2, "tx_ids": [world.transactions[2].tx_id],
        "entities": [ORG_A, PERSON], "evidence": {"holder": PERSON, "security": "600000"},
    }
    fields.update(overrides)
    return alert_raise(**fields).alert


def _pages(world, alert_id: int) -> list[str]:
    return [
        reverse("dashboard"),
        reverse("supervision:alert-list"),
        reverse("supervision:alert-detail", args=[alert_id]),
        reverse("supervision:entity-search") + "?q=甲",
        reverse("supervision:entity-detail", args=[ORG_A]),
        reverse("supervision:chain-detail", args=["sse"]),
        reverse("supervision:block-detail", args=["sse", 1]),
        reverse("supervision:transaction-detail", args=[world.transactions[0].tx_id]),
    ]


# --- access -------------------------------------------------------------------------------------


def test_every_page_answers_a_regulator(regulator_client, world):
    alert = _alert(world)
    for url in _pages(world, alert.pk):
        response = regulator_client.get(url)
        assert response.status_code == 200, url
        assert "Content-Security-Policy" in response.headers


def _query_counts(client, urls: list[str]) -> list[int]:
    counts = []
    for url in urls:
        with CaptureQueriesContext(connection) as queries:
            assert client.get(url).status_code == 200
        counts.append(len(queries))
    return counts


def test_query_counts_do_not_grow_with_rows(regulator_client, world):
    first = _alert(world)
    urls = [*_pages(world, first.pk), reverse("supervision:entity-search") + "?q=公司"]
    _query_counts(regulator_client, urls)  # warm the per-process ownership-structure cache
    before = _query_counts(regulator_client, urls)
    for i in range(25):
        _alert(world, fingerprint=f"more:{i}", entities=[ORG_A, ORG_B, PERSON], tx_ids=["a" * 64, "b" * 64])
    block = world.blocks[-1]
    for height in range(3, 30):
        block.pk, block.height, block.block_hash = None, height, f"{height:064x}"
        block.save()
    for i in range(10):
        RejectedSubmission.objects.create(chain_id_text="sse", received_at=timezone.now(), status=409,
                                          code="fork", detail=str(i), height=i)
    assert _query_counts(regulator_client, urls) == before
    assert max(before) <= 30


def test_anonymous_visitors_are_sent_to_the_login_page(client, world):
    alert = _alert(world)
    for url in _pages(world, alert.pk):
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith(reverse("login")), url


def test_non_regulators_get_403_everywhere(outsider_client, world):
    alert = _alert(world)
    for url in _pages(world, alert.pk):
        assert outsider_client.get(url).status_code == 403, url
    response = outsider_client.post(reverse("supervision:alert-triage", args=[alert.pk]), {"action": "close"})
    assert response.status_code == 403
    assert Alert.objects.get(pk=alert.pk).status == "open"


def test_unknown_objects_are_404(regulator_client, world):
    for url in [
        reverse("supervision:alert-detail", args=[999]),
        reverse("supervision:entity-detail", args=["91000000000000000X"]),
        reverse("supervision:entity-detail", args=["~not-a-token"]),
        reverse("supervision:chain-detail", args=["nosuch"]),
        reverse("supervision:block-detail", args=["sse", 99]),
        reverse("supervision:transaction-detail", args=["f" * 64]),
    ]:
        assert regulator_client.get(url).status_code == 404, url


def test_healthz_needs_no_login(client, db):
    assert client.get("/healthz").json()["status"] == "ok"


# --- overview -----------------------------------------------------------------------------------


def test_overview_shows_chains_alerts_rejections_and_charts(regulator_client, world):
    _alert(world)
    html = regulator_client.get("/").content.decode()
    row = re.search(r'<tr data-chain="sse"[^>]*>.*?</tr>', html, re.S).group(0)
    assert "上证链" in row and ">2</a>" in row  # height links to the head block
    assert 'data-field="rate">0.3<' in row  # 3 blocks in the last 10 minutes
    assert "落后 7 块" in row  # a refused submission at height 9 against head 2
    assert "对倒交易：账户 A000000001" in html
    assert "height_gap" in html
    assert 'id="blocks-figure" type="application/json"' in html
    assert 'id="severity-figure" type="application/json"' in html
    assert 'data-figure="blocks-figure"' in html
    assert "/static/vendor/plotly.min.js" in html and "cdn" not in html.lower()
    assert 'id="supervision-chain"' in html
    assert "<script>" not in html  # CSP: no inline scripts


# --- alerts -------------------------------------------------------------------------------------


def test_alert_list_filters(regulator_client, world):
    _alert(world)
    _alert(world, code="chain_stalled", severity="medium", fingerprint="stall:1",
           title_zh="业务链 szse 停止出块", title_en="Chain szse has stalled", chain_id="szse",
           entities=[], tx_ids=[])
    url = reverse("supervision:alert-list")
    both = regulator_client.get(url).content.decode()
    assert "对倒交易" in both and "停止出块" in both
    only = regulator_client.get(url, {"severity": "medium", "chain": "szse"}).content.decode()
    assert "停止出块" in only and "对倒交易：账户" not in only
    by_code = regulator_client.get(url, {"code": "wash_trade", "status": "open"}).content.decode()
    assert "对倒交易：账户" in by_code and "停止出块" not in by_code
    assert regulator_client.get(url, {"severity": "bogus"}).status_code == 200  # ignored, not an error


def test_alert_page_links_its_evidence(regulator_client, world):
    alert = _alert(world)
    html = regulator_client.get(reverse("supervision:alert-detail", args=[alert.pk])).content.decode()
    assert reverse("supervision:block-detail", args=["sse", 2]) in html
    tx_id = world.transactions[2].tx_id
    assert reverse("supervision:transaction-detail", args=[tx_id]) + "?chain=sse" in html
    assert reverse("supervision:entity-detail", args=[ORG_A]) in html
    assert "甲科技股份有限公司" in html


def test_triage_moves_status_and_records_history(regulator_client, regulator, world):
    alert = _alert(world)
    url = reverse("supervision:alert-triage", args=[alert.pk])
    response = regulator_client.post(url, {"action": "acknowledge", "note": "正在核查"})
    assert response.status_code == 302
    assert response["Location"] == reverse("supervision:alert-detail", args=[alert.pk])
    regulator_client.post(url, {"action": "assign_me"})
    regulator_client.post(url, {"action": "note", "note": "已联系券商"})
    alert.refresh_from_db()
    assert alert.status == "acknowledged" and alert.assignee_id == regulator.pk
    history = list(
        AlertHistory.objects.filter(alert=alert).order_by("id").values_list("field", "to_value", "note")
    )
    assert history == [("status", "acknowledged", "正在核查"), ("assignee", "analyst", ""),
                       ("note", "", "已联系券商")]
    html = regulator_client.get(reverse("supervision:alert-detail", args=[alert.pk])).content.decode()
    assert "正在核查" in html and "已联系券商" in html


def test_triage_refusal_is_shown_on_the_form(regulator_client, world):
    alert = _alert(world)
    url = reverse("supervision:alert-triage", args=[alert.pk])
    regulator_client.post(url, {"action": "close"})
    response = regulator_client.post(url, {"action": "escalate"})  # closed → escalated is not allowed
    assert response.status_code == 400
    html = response.content.decode()
    assert 'class="errors"' in html and "cannot go from" in html
    assert Alert.objects.get(pk=alert.pk).status == "closed"
    empty_note = regulator_client.post(url, {"action": "note", "note": "  "})
    assert empty_note.status_code == 400 and "请填写备注" in empty_note.content.decode()


def test_triage_needs_csrf(client, regulator, world):
    from django.test import Client

    alert = _alert(world)
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(regulator)
    response = strict.post(reverse("supervision:alert-triage", args=[alert.pk]), {"action": "close"})
    assert response.status_code == 403
    assert Alert.objects.get(pk=alert.pk).status == "open"


# --- masking ------------------------------------------------------------------------------------


def _every_page_html(client, world, alert) -> str:
    person_url = None
    html = ""
    for url in [
        *_pages(world, alert.pk),
        reverse("supervision:entity-search") + "?q=A000000001",  # the person's account
        reverse("supervision:transaction-detail", args=[world.transactions[1].tx_id]),
        reverse("supervision:block-detail", args=["sse", 2]),
    ]:
        page = client.get(url).content.decode()
        html += page
        found = re.search(r'href="(/entities/[^"]+)"[^>]*>张三', page)
        person_url = person_url or (found and found.group(1))
    assert person_url, "a link to the person"
    return html + client.get(person_url).content.decode()


def test_person_ids_are_masked_everywhere_without_the_permission(regulator_client, world):
    alert = _alert(world)
    html = _every_page_html(regulator_client, world, alert)
    assert PERSON not in html  # not in text, not in links, not in figure JSON
    assert mask_prc_id(PERSON) in html
    assert ORG_A in html  # organisations are not masked


def test_person_ids_show_with_the_permission(revealing_client, world):
    alert = _alert(world)
    html = _every_page_html(revealing_client, world, alert)
    assert PERSON in html
    assert reverse("supervision:entity-detail", args=[PERSON]) in html


def test_person_ids_inside_alert_texts_and_notes_are_masked_without_the_permission(regulator_client, world):
    alert = _alert(world, title_zh=f"关联方交易：张三（{PERSON}）", detail_zh=f"shared_person:{PERSON}")
    regulator_client.post(reverse("supervision:alert-triage", args=[alert.pk]),
                          {"action": "note", "note": f"已联系 {PERSON}"})
    pages = [reverse("dashboard"), reverse("supervision:alert-list"),
             reverse("supervision:alert-detail", args=[alert.pk])]
    html = "".join(regulator_client.get(url).content.decode() for url in pages)
    assert PERSON not in html
    assert html.count(f"张三（{mask_prc_id(PERSON)}）") >= 3 and f"已联系 {mask_prc_id(PERSON)}" in html


# --- entity page --------------------------------------------------------------------------------


def test_entity_page_shows_owners_controller_group_accounts_and_graph(revealing_client, world):
    html = revealing_client.get(reverse("supervision:entity-detail", args=[ORG_A])).content.decode()
    owners = re.search(r'id="beneficial-owners".*?</section>', html, re.S).group(0)
    assert "张三" in owners and "60.00%" in owners
    control = re.search(r'id="control".*?</section>', html, re.S).group(0)
    assert "张三" in control  # > 50 % makes the person the ultimate controller
    assert 'id="graph-figure" type="application/json"' in html
    related = re.search(r'id="related".*?</section>', html, re.S).group(0)
    assert "乙投资有限公司" in related  # holds 30 % of it directly
    person = revealing_client.get(reverse("supervision:entity-detail", args=[PERSON])).content.decode()
    accounts = re.search(r'id="accounts".*?</section>', person, re.S).group(0)
    assert "A000000001" in accounts and "乙投资有限公司" in accounts
    assert "董事" in person  # the role


def test_entity_search_by_name_account_and_id(regulator_client, world):
    url = reverse("supervision:entity-search")
    assert "甲科技股份有限公司" in regulator_client.get(url, {"q": "甲科技"}).content.decode()
    assert "张三" in regulator_client.get(url, {"q": "A000000001"}).content.decode()
    assert "乙投资有限公司" in regulator_client.get(url, {"q": ORG_B[:8]}).content.decode()
    assert "张三" not in regulator_client.get(url, {"q": PERSON[:8]}).content.decode()  # no prefix search


# --- explorer -----------------------------------------------------------------------------------


def test_block_page_shows_header_signatures_verification_anchor_and_transactions(regulator_client, world):
    block = world.blocks[1]
    html = regulator_client.get(reverse("supervision:block-detail", args=["sse", 1])).content.decode()
    assert block.block_hash in html and block.tx_root in html
    assert "sse-node-1" in html and block.signatures[0]["sig"] in html
    assert "尚未锚定" in html
    for tx in world.transactions[:2]:
        assert reverse("supervision:transaction-detail", args=[tx.tx_id]) + "?chain=sse" in html
    assert reverse("supervision:block-detail", args=["sse", 0]) in html


def test_chain_page_lists_recent_blocks_and_rejections(regulator_client, world):
    html = regulator_client.get(reverse("supervision:chain-detail", args=["sse"])).content.decode()
    for height in range(3):
        assert reverse("supervision:block-detail", args=["sse", height]) in html
    assert "height_gap" in html and "abcd1234" in html


def test_chain_page_computes_the_row_of_its_own_chain_only(regulator_client, world):
    RejectedSubmission.objects.create(chain_id_text="szse", token_prefix="ffff0000",
                                      received_at=timezone.now(), status=409, code="height_gap",
                                      detail="height 50 above next 0", extra={"expected_height": 0},
                                      height=50)
    with CaptureQueriesContext(connection) as queries:
        html = regulator_client.get(reverse("supervision:chain-detail", args=["sse"])).content.decode()
    assert "落后 7 块" in html  # sse refused height 9 with head 2; szse's height 50 plays no part
    assert re.search(r"<dd>0\.3 <span class=\"muted\">", html)  # 3 blocks in the last 10 minutes
    chain_tables = ('"businesschain_chain"', '"businesschain_block"', '"businesschain_rejectedsubmission"')
    for query in queries:
        source, _, where = query["sql"].partition(" FROM ")[2].partition(" WHERE ")
        if source.startswith(chain_tables):
            assert "'sse'" in where, query["sql"]  # no query reads every chain


def test_transaction_page_links_entities(regulator_client, world):
    tx = world.transactions[2]
    html = regulator_client.get(reverse("supervision:transaction-detail", args=[tx.tx_id])).content.decode()
    assert tx.tx_id in html
    assert reverse("supervision:entity-detail", args=[ORG_A]) in html
    assert reverse("supervision:block-detail", args=["sse", 2]) in html


# --- language -----------------------------------------------------------------------------------


def test_language_switch_renders_english(regulator_client, world):
    alert = _alert(world)
    assert "监管总览" in regulator_client.get("/").content.decode()
    response = regulator_client.post(reverse("set_language"), {"language": "en", "next": "/"})
    assert response.status_code == 302
    html = regulator_client.get("/").content.decode()
    assert '<html lang="en">' in html
    assert "Supervision overview" in html and "监管总览" not in html
    assert "Wash trade: account A000000001" in html
    detail = regulator_client.get(reverse("supervision:alert-detail", args=[alert.pk])).content.decode()
    assert "Acknowledge" in detail and "Evidence" in detail
    assert timezone.get_current_timezone_name() == "Asia/Shanghai"


def test_person_links_carry_a_stable_opaque_token():
    from django.http import Http404

    from supervision.views import entity_ref_decode, entity_ref_encode

    token = entity_ref_encode(PERSON)
    assert token.startswith("~") and PERSON not in token and PERSON[:6] not in token
    assert entity_ref_encode(PERSON) == token  # one person, one URL
    assert entity_ref_decode(token) == PERSON
    assert entity_ref_decode(ORG_A) == ORG_A
    tampered = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    with pytest.raises(Http404):
        entity_ref_decode(tampered)


def test_blocks_per_minute_series_buckets_by_shanghai_minute(world):
    from supervision.dashboard_selectors import blocks_per_minute_series

    now = world.blocks[-1].received_at
    minutes, series = blocks_per_minute_series(now=now, minutes=5)
    assert len(minutes) == 5 and minutes[-1] == timezone.localtime(now).strftime("%H:%M")
    assert sum(series["sse"]) == 3 and series["sse"][-1] == 1
    assert series["szse"] == [0] * 5
