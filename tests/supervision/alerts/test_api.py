"""GET/PATCH /api/v1/alerts (supervision API §1): shape, language, filters, pagination, query
count, triage through the API, permissions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse
from rest_framework.authtoken.models import Token

from businesschain.registry import chain_register
from supervision.models import Alert, AlertHistory
from supervision.selectors import alert_json
from supervision.services import alert_update

pytestmark = pytest.mark.django_db

LIST_KEYS = {"id", "code", "severity", "status", "title", "detail", "chain", "block_height", "tx_ids",
             "entities", "created_at", "last_seen", "assignee"}
LIST_URL = "/api/v1/alerts"


def detail_url(pk: int) -> str:
    return f"/api/v1/alerts/{pk}"


def test_url_names_are_in_the_supervision_api_namespace():
    assert reverse("supervision-api:alert-list") == LIST_URL
    assert reverse("supervision-api:alert-detail", kwargs={"alert_id": 5}) == detail_url(5)


def test_list_item_has_exactly_the_spec_keys_in_chinese_by_default(regulator_client, make_alert):
    at = datetime(2026, 11, 21, 8, 0, 0, 123456, tzinfo=UTC)
    alert = make_alert(at=at, chain_id="sse", block_height=42).alert
    response = regulator_client.get(LIST_URL)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"count", "next", "previous", "results"} and body["count"] == 1
    item = body["results"][0]
    assert set(item) == LIST_KEYS
    assert item == {
        "id": alert.pk, "code": "wash_trade", "severity": "high", "status": "open",
        "title": alert.title_zh, "detail": alert.detail_zh, "chain": "sse", "block_height": 42,
        "tx_ids": alert.tx_ids, "entities": alert.entities,
        "created_at": "2026-11-21T08:00:00.123Z", "last_seen": "2026-11-21T08:00:00.123Z",
        "assignee": None,
    }


def test_english_via_accept_language(regulator_client, make_alert):
    alert = make_alert().alert
    item = regulator_client.get(LIST_URL, HTTP_ACCEPT_LANGUAGE="en").json()["results"][0]
    assert (item["title"], item["detail"]) == (alert.title_en, alert.detail_en)
    detail = regulator_client.get(detail_url(alert.pk), HTTP_ACCEPT_LANGUAGE="en-US,en;q=0.9").json()
    assert detail["title"] == alert.title_en


def test_list_is_newest_first_and_paginated(regulator_client, make_alert):
    start = datetime(2026, 1, 1, tzinfo=UTC)
    pks = [make_alert(at=start + timedelta(minutes=i)).alert.pk for i in range(3)]
    body = regulator_client.get(LIST_URL, {"page_size": 2}).json()
    assert [a["id"] for a in body["results"]] == pks[::-1][:2]
    assert body["count"] == 3 and body["next"] and body["previous"] is None
    second = regulator_client.get(LIST_URL, {"page_size": 2, "page": 2}).json()
    assert [a["id"] for a in second["results"]] == [pks[0]]


def test_filters(regulator_client, make_alert):
    base = datetime(2026, 3, 1, tzinfo=UTC)
    wash = make_alert("wash_trade", chain_id="sse", entities=["ORG-A", "P-1"], at=base).alert
    ring = make_alert("trade_ring", chain_id="szse", entities=["P-1"], at=base + timedelta(days=2)).alert
    fork = make_alert("fork", chain_id="szse", entities=[], at=base + timedelta(days=4)).alert
    Alert.objects.filter(pk=ring.pk).update(status="acknowledged")

    def ids(**query):
        response = regulator_client.get(LIST_URL, query)
        assert response.status_code == 200, response.content
        return sorted(a["id"] for a in response.json()["results"])

    assert ids(code="wash_trade") == [wash.pk]
    assert ids(code="wash_trade,fork") == sorted([wash.pk, fork.pk])
    assert ids(severity="critical") == [fork.pk]
    assert ids(severity="high") == sorted([wash.pk, ring.pk])
    assert ids(status="acknowledged") == [ring.pk]
    assert ids(status="open") == sorted([wash.pk, fork.pk])
    assert ids(chain="szse") == sorted([ring.pk, fork.pk])
    assert ids(entity="P-1") == sorted([wash.pk, ring.pk])
    assert ids(entity="ORG-A", chain="sse") == [wash.pk]
    assert ids(since="2026-03-02T00:00:00Z") == sorted([ring.pk, fork.pk])
    assert ids(since="2026-03-04T08:00:00+08:00") == [fork.pk]
    assert ids(since="2026-03-05") == [fork.pk]  # a date is midnight UTC
    assert ids(code="wash_trade", severity="critical") == []


def test_since_matches_repeats_by_last_seen(regulator_client, make_alert):
    old = datetime(2025, 1, 1, tzinfo=UTC)
    first = make_alert(fingerprint="wash_trade:again", at=old).alert
    make_alert(fingerprint="wash_trade:again", at=old + timedelta(days=30))
    body = regulator_client.get(LIST_URL, {"since": "2025-01-15T00:00:00Z"}).json()
    assert [a["id"] for a in body["results"]] == [first.pk]


@pytest.mark.parametrize(
    ("parameter", "value"),
    [("code", "nonsense"), ("severity", "urgent"), ("status", "done"), ("chain", "NOT A CHAIN"),
     ("since", "yesterday"), ("since", "2026-13-01T00:00:00Z"), ("entity", "x" * 65),
     ("severity", "high,urgent")],
)
def test_invalid_filter_is_400_naming_the_parameter(regulator_client, parameter, value):
    response = regulator_client.get(LIST_URL, {parameter: value})
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid_filter" and body["parameter"] == parameter and body["detail"]


def test_list_query_count_is_bounded(regulator_client, make_alert, regulator, other_regulator,
                                     django_assert_max_num_queries):
    for i in range(30):
        alert = make_alert(entities=[f"E{i}", f"F{i}"]).alert
        if i % 2:
            alert_update(alert_id=alert.pk, by=regulator, assignee=other_regulator)
    regulator_client.get(LIST_URL)  # warm the session
    # session, user, regulator check, person-identifier permission (user's and groups'), count,
    # page, the kinds of the page's entities for masking: none per row
    with django_assert_max_num_queries(8):
        response = regulator_client.get(LIST_URL, {"page_size": 30})
    assert response.status_code == 200
    assert sum(1 for a in response.json()["results"] if a["assignee"] == "second-analyst") == 15


def test_detail_adds_evidence_and_history(regulator_client, make_alert, regulator, other_regulator):
    alert = make_alert(evidence={"security": "600000"}).alert
    alert_update(alert_id=alert.pk, by=regulator, status="acknowledged", assignee=other_regulator,
                 note="mine")
    body = regulator_client.get(detail_url(alert.pk)).json()
    assert set(body) == LIST_KEYS | {"evidence", "history"}
    assert body["evidence"] == {"security": "600000"}
    assert body["assignee"] == "second-analyst"
    assert [{k: v for k, v in h.items() if k != "at"} for h in body["history"]] == [
        {"by": "analyst", "field": "status", "from": "open", "to": "acknowledged", "note": "mine"},
        {"by": "analyst", "field": "assignee", "from": None, "to": "second-analyst", "note": "mine"},
    ]
    assert all(h["at"].endswith("Z") for h in body["history"])


def test_unknown_alert_is_404(regulator_client):
    response = regulator_client.get(detail_url(424242))
    assert response.status_code == 404 and response.json()["code"] == "unknown_alert"
    response = regulator_client.patch(detail_url(424242), {"note": "x"}, content_type="application/json")
    assert response.status_code == 404


# --- PATCH ------------------------------------------------------------------------------------

def patch(client, pk, data):
    return client.patch(detail_url(pk), data, content_type="application/json")


def test_patch_changes_status_assignee_and_note_and_answers_the_detail(regulator_client, make_alert,
                                                                        other_regulator):
    alert = make_alert().alert
    response = patch(regulator_client, alert.pk,
                     {"status": "escalated", "assignee": "second-analyst", "note": "to the desk"})
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["status"], body["assignee"]) == ("escalated", "second-analyst")
    assert [h["field"] for h in body["history"]] == ["status", "assignee"]
    response = patch(regulator_client, alert.pk, {"assignee": None, "status": "open"})
    assert response.json()["assignee"] is None and response.json()["status"] == "open"
    response = patch(regulator_client, alert.pk, {"note": "only a note"})
    assert response.json()["history"][-1] == {**response.json()["history"][-1], "field": "note",
                                              "note": "only a note", "by": "analyst"}


def test_patch_invalid_transition_is_400_and_changes_nothing(regulator_client, make_alert):
    alert = make_alert().alert
    assert patch(regulator_client, alert.pk, {"status": "closed"}).status_code == 200
    response = patch(regulator_client, alert.pk, {"status": "escalated", "note": "nope"})
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid_transition"
    assert body["errors"][0]["path"] == "/status"
    alert.refresh_from_db()
    assert alert.status == "closed"
    assert AlertHistory.objects.filter(alert=alert).count() == 1


@pytest.mark.parametrize(
    ("data", "path"),
    [({"status": "done"}, "/status"), ({"colour": "red"}, "/colour"), ({"assignee": "nobody"}, "/assignee"),
     ({"note": "x" * 2001}, "/note"), ({"assignee": 5}, "/assignee"), ({}, ""), ([1, 2], "")],
)
def test_patch_bad_body_is_400_with_json_pointers(regulator_client, make_alert, data, path):
    alert = make_alert().alert
    response = patch(regulator_client, alert.pk, data)
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["code"] == "invalid"
    assert path in [e["path"] for e in body["errors"]], body
    assert AlertHistory.objects.count() == 0


def test_patch_assignee_must_be_a_regulator(regulator_client, make_alert, outsider):
    alert = make_alert().alert
    response = patch(regulator_client, alert.pk, {"assignee": "outsider"})
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_assignee"
    assert response.json()["errors"] == [{"path": "/assignee", "message": "not a regulator"}]


def test_patch_with_a_script_token(client, regulator, make_alert):
    token = Token.objects.create(user=regulator)
    alert = make_alert().alert
    response = client.patch(detail_url(alert.pk), {"status": "acknowledged"},
                            content_type="application/json", HTTP_AUTHORIZATION=f"Token {token.key}")
    assert response.status_code == 200
    assert AlertHistory.objects.get().by == regulator


# --- permissions ------------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["get_list", "get_detail", "patch"])
def test_anonymous_is_401_non_regulator_403_and_chain_token_403(client, make_alert, outsider, method):
    alert = make_alert().alert
    issued = chain_register(chain_id="perm", name="perm", quorum=1,
                            nodes={"n1": _public_key()})

    def call(**headers):
        if method == "get_list":
            return client.get(LIST_URL, **headers)
        if method == "get_detail":
            return client.get(detail_url(alert.pk), **headers)
        return client.patch(detail_url(alert.pk), {"note": "x"}, content_type="application/json", **headers)

    response = call()
    assert response.status_code == 401 and response.json()["code"] == "not_authenticated"
    response = call(HTTP_AUTHORIZATION=f"Token {issued.key}")
    assert response.status_code == 403 and response.json()["code"] == "permission_denied"
    client.force_login(outsider)
    response = call()
    assert response.status_code == 403 and response.json()["code"] == "permission_denied"
    assert AlertHistory.objects.count() == 0


def test_alert_json_is_the_list_item(regulator_client, make_alert):
    alert = make_alert().alert
    assert regulator_client.get(LIST_URL).json()["results"][0] == alert_json(alert, language="zh-hans")


def _public_key() -> str:
    from tests.chainkit import node_keys

    return node_keys(1)[0].public_key().to_hex()
