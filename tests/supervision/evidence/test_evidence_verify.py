"""存证核验: a file or its SM3 finds the evidence and disclosure transactions that carry it."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from gm.sm3 import sm3_hex
from tests.chainkit import Ids, TestChain

pytestmark = pytest.mark.django_db
DOCUMENT = "保荐协议（签署版）".encode() * 1000


@pytest.fixture
def stored(client):
    sse = TestChain.register("sse")
    ids = Ids(5)
    digest = sm3_hex(DOCUMENT)
    evidence = sse.tx("evidence", {"business_type": "sponsor_agreement", "reference": "IPO-2026-001",
                                   "doc_sm3": digest, "fields": {"firm": "某证券"}})
    other = sse.tx("evidence", {"business_type": "x", "reference": "y", "doc_sm3": "ab" * 32})
    disclosure = sse.tx("disclosure", {"issuer": ids.org(), "holder": ids.org(), "kind": "periodic",
                                       "doc_sm3": digest, "as_of": "2026-11-01T00:00:00.000Z"})
    block = sse.submit(client, [evidence, other])
    later = sse.submit(client, [disclosure])
    return digest, evidence, disclosure, block, later


def test_uploaded_file_finds_its_evidence_and_disclosure(regulator_client, stored):
    digest, evidence, disclosure, block, later = stored
    response = regulator_client.post("/api/v1/evidence/verify",
                                     {"file": SimpleUploadedFile("a.pdf", DOCUMENT)})
    assert response.status_code == 200, response.content
    data = response.json()
    assert data["sm3"] == digest
    assert data["records"] == [
        {"chain": "sse", "height": 0, "tx_id": evidence["tx_id"], "business_type": "sponsor_agreement",
         "reference": "IPO-2026-001", "receipt": f"/api/v1/receipts/{block['block_hash']}"},
        {"chain": "sse", "height": 1, "tx_id": disclosure["tx_id"], "business_type": "disclosure",
         "reference": f"{disclosure['body']['issuer']}:periodic",
         "receipt": f"/api/v1/receipts/{later['block_hash']}"},
    ]


def test_json_sm3_is_accepted_in_any_case(regulator_client, stored):
    digest = stored[0]
    response = regulator_client.post("/api/v1/evidence/verify/", {"sm3": digest.upper()},
                                     content_type="application/json")
    assert response.status_code == 200
    assert len(response.json()["records"]) == 2


def test_unknown_document_has_no_records(regulator_client, stored):
    response = regulator_client.post("/api/v1/evidence/verify",
                                     {"file": SimpleUploadedFile("b.pdf", b"something else")})
    assert response.json()["records"] == []


def test_bad_input_is_400_with_pointer(regulator_client):
    response = regulator_client.post("/api/v1/evidence/verify", {"sm3": "xyz"},
                                     content_type="application/json")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid" and response.json()["errors"][0]["path"] == "/sm3"
    response = regulator_client.post("/api/v1/evidence/verify", {}, content_type="application/json")
    assert response.status_code == 400 and response.json()["errors"][0]["path"] == "/file"


def test_only_regulators_may_verify(client, regulator, stored, django_user_model):
    def verify(**headers):
        return client.post("/api/v1/evidence/verify", {"sm3": stored[0]}, content_type="application/json",
                           **headers)

    anonymous = verify()
    assert anonymous.status_code == 401 and anonymous.json()["code"] == "not_authenticated"
    chain = verify(**TestChain.register("szse").headers())
    assert chain.status_code == 403 and chain.json()["code"] == "permission_denied"  # known, not allowed
    client.force_login(django_user_model.objects.create_user("outsider", password="x-pass-12345"))
    assert verify().status_code == 403
    client.force_login(regulator)
    answer = verify()
    assert answer.status_code == 200 and len(answer.json()["records"]) == 2
