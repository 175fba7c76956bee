"""Person identifiers in alerts (supervision API §1): a regulator without
`supervision.view_person_identifiers` sees them masked in `GET alerts`, `GET alerts/{id}`, the
`PATCH` answer and the live events; a regulator with it sees them whole."""

from __future__ import annotations

import json
import random

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.contrib.auth.models import Group, Permission, User
from django.test import Client

from businesschain.api.permissions import REGULATOR_GROUP
from businesschain.models import Chain, Entity
from businesschain.protocol.identifiers import make_prc_id, make_uscc, mask_prc_id
from supervision.analytics.findings import Finding
from supervision.surveillance import alert_text
from tests.supervision.alerts.test_realtime import TIMEOUT, session_of, ws

pytestmark = pytest.mark.django_db

PERSON = make_prc_id(random.Random(11643))  # a GB 11643 number: masked by its form alone
PASSPORT = "HK:K1234567"  # a person registered with another id: masked because registered as a person
ORG = make_uscc(random.Random(32100))
MASKED = mask_prc_id(PERSON)
LIST_URL = "/api/v1/alerts"


@pytest.fixture
def registered(db) -> None:
    chain = Chain.objects.create(id="sse", name="上证链")
    for entity_id, kind, name, id_type in ((PASSPORT, "person", "陈七", "OTHER"),
                                           (ORG, "org", "甲公司", "USCC")):
        Entity.objects.create(id=entity_id, kind=kind, name=name, id_type=id_type, chain=chain,
                              tx_id="0" * 64, height=0)


@pytest.fixture
def insider(db) -> User:
    """A regulator who may see person identifiers."""
    user = User.objects.create_user("insider", password="insider-pass-123")
    user.groups.add(Group.objects.get_or_create(name=REGULATOR_GROUP)[0])
    user.user_permissions.add(Permission.objects.get(content_type__app_label="supervision",
                                                     codename="view_person_identifiers"))
    return user


@pytest.fixture
def insider_client(insider) -> Client:
    client = Client()
    client.force_login(insider)
    return client


EVIDENCE = {"rule": "related_party_trade",
            "facts": {"buyer": PERSON, "seller": ORG, "holders": [PASSPORT, ORG],
                      "reasons": [f"shared_person:{PASSPORT}", f"direct_stake:{PERSON}>{ORG}:0.300000"],
                      "positions": {PERSON: 300}}}


def alert_naming_people(make_alert):
    """Texts written with whole ids, as rows raised before the texts were masked at raising."""
    return make_alert(
        "related_party_trade",
        title_zh=f"关联方交易：张三（{PERSON}）与 甲公司（{ORG}）为关联方",
        title_en=f"Related-party trade: 张三 ({PERSON}) and 甲公司 ({ORG}) are related parties",
        detail_zh=f"卖方 {ORG} 与买方 {PERSON} 为关联方（shared_person:{PASSPORT}）。",
        detail_en=f"Seller {ORG} and buyer {PERSON} are related parties (shared_person:{PASSPORT}).",
        entities=[PERSON, ORG, PASSPORT],
        evidence=EVIDENCE,
    ).alert


def assert_no_whole_person_id(body) -> None:
    text = json.dumps(body, ensure_ascii=False)
    assert PERSON not in text and PASSPORT not in text, text


# --- API --------------------------------------------------------------------------------------


def test_regulator_without_the_permission_sees_masked_ids_in_list_detail_and_patch(
        regulator_client, registered, make_alert):
    alert = alert_naming_people(make_alert)
    masked_entities = [MASKED, ORG, mask_prc_id(PASSPORT)]

    for language in ("zh-hans", "en"):
        listed = regulator_client.get(LIST_URL, HTTP_ACCEPT_LANGUAGE=language)
        assert listed.status_code == 200
        [item] = listed.json()["results"]
        assert item["entities"] == masked_entities
        assert MASKED in item["title"] and ORG in item["title"]  # organisations are not masked
        assert mask_prc_id(PASSPORT) in item["detail"]
        assert_no_whole_person_id(listed.json())

    detail = regulator_client.get(f"/api/v1/alerts/{alert.pk}").json()
    assert detail["entities"] == masked_entities
    assert detail["evidence"] == {
        "rule": "related_party_trade",
        "facts": {"buyer": MASKED, "seller": ORG, "holders": [mask_prc_id(PASSPORT), ORG],
                  "reasons": [f"shared_person:{mask_prc_id(PASSPORT)}",
                              f"direct_stake:{MASKED}>{ORG}:0.300000"],
                  "positions": {MASKED: 300}},
    }
    assert_no_whole_person_id(detail)

    patched = regulator_client.patch(f"/api/v1/alerts/{alert.pk}",
                                     {"status": "acknowledged", "note": f"已联系 {PERSON} 本人"},
                                     content_type="application/json")
    assert patched.status_code == 200
    body = patched.json()
    assert body["status"] == "acknowledged" and body["entities"] == masked_entities
    assert body["history"][-1]["note"] == f"已联系 {MASKED} 本人"
    assert body["evidence"]["facts"]["buyer"] == MASKED
    assert_no_whole_person_id(body)


def test_regulator_with_the_permission_sees_whole_ids(insider_client, registered, make_alert):
    alert = alert_naming_people(make_alert)
    [item] = insider_client.get(LIST_URL).json()["results"]
    assert item["entities"] == [PERSON, ORG, PASSPORT]
    assert item["title"] == alert.title_zh
    detail = insider_client.get(f"/api/v1/alerts/{alert.pk}").json()
    assert detail["entities"] == [PERSON, ORG, PASSPORT] and detail["evidence"] == EVIDENCE
    patched = insider_client.patch(f"/api/v1/alerts/{alert.pk}", {"note": f"已联系 {PERSON} 本人"},
                                   content_type="application/json").json()
    assert patched["entities"] == [PERSON, ORG, PASSPORT] and patched["evidence"] == EVIDENCE
    assert patched["history"][-1]["note"] == f"已联系 {PERSON} 本人"


# --- live events ------------------------------------------------------------------------------


def test_live_events_are_masked_unless_the_connected_user_may_see_ids(
        client, regulator, insider, registered, make_alert, shared_connection,
        django_capture_on_commit_callbacks):
    masked_cookie = session_of(client, regulator)
    insider_cookie = session_of(Client(), insider)

    def raise_alert() -> int:
        with django_capture_on_commit_callbacks(execute=True):
            return alert_naming_people(make_alert).pk

    async def scenario() -> tuple[int, list[str], list[str]]:
        sockets = [ws(masked_cookie), ws(masked_cookie, "/ws/alerts/?chain=sse"),
                   ws(insider_cookie), ws(insider_cookie, "/ws/alerts/?chain=sse")]
        for socket in sockets:
            assert (await socket.connect(timeout=TIMEOUT))[0]
        pk = await sync_to_async(raise_alert)()
        frames = []
        for socket in sockets:
            frames.append((await socket.receive_output(timeout=TIMEOUT))["text"])
            assert await socket.receive_nothing(timeout=0.2)  # one event each, not one per audience
            await socket.disconnect()
        return pk, frames[:2], frames[2:]

    pk, masked_frames, insider_frames = async_to_sync(scenario)()
    masked_item = client.get(LIST_URL).json()["results"][0]  # what this regulator's API answers
    insider_api = Client()
    insider_api.force_login(insider)
    insider_item = insider_api.get(LIST_URL).json()["results"][0]
    for frame in masked_frames:
        message = json.loads(frame)
        assert message["type"] == "alert.created"
        assert PERSON not in frame and PASSPORT not in frame, frame
        event = message["alert"]
        assert event["id"] == pk and event["entities"] == [MASKED, ORG, mask_prc_id(PASSPORT)]
        assert MASKED in event["title_en"] and mask_prc_id(PASSPORT) in event["detail_en"]
        assert {k: v for k, v in event.items() if k not in ("title_en", "detail_en")} == masked_item
    for frame in insider_frames:
        event = json.loads(frame)["alert"]
        assert event["entities"] == [PERSON, ORG, PASSPORT] and PERSON in event["title_en"]
        assert {k: v for k, v in event.items() if k not in ("title_en", "detail_en")} == insider_item


# --- texts written when an alert is raised ------------------------------------------------------


def test_alert_texts_mask_person_ids_in_names_and_reasons():
    finding = Finding(
        code="related_party_trade", fingerprint="related_party_trade:x", chain="sse", height=7,
        entities=(PERSON, ORG),
        facts={"buyer": PERSON, "seller": ORG, "buyer_account": "A000000001", "seller_account": "A000000002",
               "security": "600000", "quantity": "100", "price": "10.00",
               "reasons": [f"shared_person:{PASSPORT}", f"direct_stake:{PERSON}>{ORG}:0.300000"]},
    )
    texts = alert_text(finding, {PERSON: "张三", ORG: "甲公司"}, {PASSPORT: "person", ORG: "org"})
    for text in texts:
        assert PERSON not in text and PASSPORT not in text, text
    title_zh, _, detail_zh, detail_en = texts
    assert f"张三（{MASKED}）" in title_zh and f"甲公司（{ORG}）" in title_zh
    assert f"shared_person:{mask_prc_id(PASSPORT)}" in detail_en
    assert f"direct_stake:{MASKED}>{ORG}" in detail_zh
