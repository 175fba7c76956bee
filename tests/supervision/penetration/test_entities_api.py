"""`GET entities…` (supervision API §1): shapes, the 25 % line, thresholds, masking of identity numbers."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission

from businesschain.protocol.identifiers import mask_prc_id

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(ledger, ids):
    """TARGET: P1 holds 24.99 % and P4 exactly 25 % directly; P2 holds 51 % of HOLDCO, which holds
    50 % of TARGET (25.5 % integrated); P3 is TARGET's actual controller; P2 controls HOLDCO."""
    w = {"target": ids.org(), "holdco": ids.org(), "broker": ids.org(),
         "p1": ids.person(), "p2": ids.person(), "p3": ids.person(), "p4": ids.person()}
    ledger.submit([
        ledger.register(w["target"], "org", "目标股份有限公司"),
        ledger.register(w["holdco"], "org", "控股集团有限公司"),
        ledger.register(w["broker"], "org", "示例证券股份有限公司"),
        ledger.register(w["p1"], "person", "张三"),
        ledger.register(w["p2"], "person", "李四"),
        ledger.register(w["p3"], "person", "王五"),
        ledger.register(w["p4"], "person", "赵六"),
        ledger.account("A000000001", w["p2"], w["broker"]),
        ledger.holding(w["p1"], w["target"], 2499),
        ledger.holding(w["p4"], w["target"], 2500),
        ledger.holding(w["holdco"], w["target"], 5000),
        ledger.holding(w["p2"], w["holdco"], 5100),
        ledger.role(w["target"], w["p3"]),
    ])
    return w


@pytest.fixture
def insider(regulator):
    regulator.user_permissions.add(Permission.objects.get(codename="view_person_identifiers"))
    return regulator


def test_25_percent_is_a_beneficial_owner_and_24_99_is_not(client, insider, world):
    client.force_login(insider)
    response = client.get(f"/api/v1/entities/{world['target']}/beneficial-owners?threshold=0.25")
    assert response.status_code == 200, response.content
    data = response.json()
    assert data["entity"] == world["target"] and data["threshold"] == "0.25"
    owners = [(o["id"], o["share"], o["direct"], o["reasons"]) for o in data["owners"]]
    assert owners == [
        (world["p2"], "0.255000", "0.000000", ["ownership"]),
        (world["p4"], "0.250000", "0.250000", ["ownership"]),
        (world["p3"], "0.000000", "0.000000", ["actual_controller"]),
    ]
    first = data["owners"][0]
    assert first["name"] == "李四" and first["kind"] == "person"
    assert first["paths"][0]["nodes"] == [world["p2"], world["holdco"], world["target"]]
    assert first["paths"][0]["fractions"] == ["0.510000", "0.500000"]
    assert world["p1"] not in {o["id"] for o in data["owners"]}


def test_lower_threshold_includes_the_direct_holder(client, insider, world):
    client.force_login(insider)
    data = client.get(f"/api/v1/entities/{world['target']}/beneficial-owners?threshold=0.2499").json()
    assert [(o["id"], o["share"], o["direct"]) for o in data["owners"][:3]] == [
        (world["p2"], "0.255000", "0.000000"), (world["p4"], "0.250000", "0.250000"),
        (world["p1"], "0.249900", "0.249900")]


@pytest.mark.parametrize("threshold", ["0", "-0.1", "1.01", "abc", "NaN", "inf"])
def test_threshold_outside_0_to_1_is_refused_naming_the_parameter(regulator_client, world, threshold):
    response = regulator_client.get(f"/api/v1/entities/{world['target']}/beneficial-owners",
                                    {"threshold": threshold})
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_parameter"
    assert response.json()["parameter"] == "threshold"


def test_threshold_of_one_is_allowed(regulator_client, world):
    response = regulator_client.get(f"/api/v1/entities/{world['target']}/beneficial-owners?threshold=1")
    assert response.status_code == 200
    assert [o["reasons"] for o in response.json()["owners"]] == [["actual_controller"]]


def test_person_ids_are_masked_without_the_permission(regulator_client, world):
    data = regulator_client.get(f"/api/v1/entities/{world['target']}/beneficial-owners").json()
    assert [o["id"] for o in data["owners"]] == [mask_prc_id(world[p]) for p in ("p2", "p4", "p3")]
    assert data["owners"][0]["paths"][0]["nodes"][0] == mask_prc_id(world["p2"])
    assert data["owners"][0]["paths"][0]["nodes"][1] == world["holdco"]  # organisations stay visible
    detail = regulator_client.get(f"/api/v1/entities/{world['p2']}").json()
    assert detail["id"] == mask_prc_id(world["p2"]) and world["p2"] not in str(detail)


def test_entity_detail_shape(client, insider, world):
    client.force_login(insider)
    response = client.get(f"/api/v1/entities/{world['holdco']}")
    assert response.status_code == 200
    data = response.json()
    assert list(data) == ["id", "kind", "name", "chains", "accounts", "controller", "group",
                          "beneficial_owners"]
    assert data["id"] == world["holdco"] and data["kind"] == "org" and data["chains"] == ["sse"]
    assert data["controller"] == {"id": world["p2"], "name": "李四"}
    assert data["group"] == sorted([world["holdco"], world["p2"]])
    assert [o["id"] for o in data["beneficial_owners"]] == [world["p2"]]
    assert data["beneficial_owners"][0]["share"] == "0.510000"
    person = client.get(f"/api/v1/entities/{world['p2']}").json()
    assert person["accounts"] == [{"chain": "sse", "account": "A000000001", "broker": world["broker"]}]
    assert person["controller"] is None and person["beneficial_owners"] == []


def test_actual_controller_is_the_controller(regulator_client, world):
    data = regulator_client.get(f"/api/v1/entities/{world['target']}").json()
    assert data["controller"] == {"id": mask_prc_id(world["p3"]), "name": "王五"}


def test_unknown_entity_is_404(regulator_client, world, ids):
    for path in ("", "/beneficial-owners", "/graph"):
        response = regulator_client.get(f"/api/v1/entities/{ids.org()}{path}")
        assert response.status_code == 404
        assert response.json()["code"] == "unknown_entity"


def test_graph_nodes_and_weighted_edges(client, insider, world):
    client.force_login(insider)
    data = client.get(f"/api/v1/entities/{world['target']}/graph?depth=1").json()
    assert {n["id"] for n in data["nodes"]} == {world[k] for k in ("target", "holdco", "p1", "p4")}
    assert {"id", "name", "kind"} <= set(data["nodes"][0])
    edges = {(e["source"], e["target"]): e["weight"] for e in data["edges"]}
    assert edges == {(world["holdco"], world["target"]): "0.500000",
                     (world["p1"], world["target"]): "0.249900", (world["p4"], world["target"]): "0.250000"}
    deeper = client.get(f"/api/v1/entities/{world['target']}/graph").json()
    assert {n["id"] for n in deeper["nodes"]} == {world[k] for k in ("target", "holdco", "p1", "p2", "p4")}


@pytest.mark.parametrize("depth", ["0", "7", "x"])
def test_graph_depth_outside_1_to_6_is_refused(regulator_client, world, depth):
    response = regulator_client.get(f"/api/v1/entities/{world['target']}/graph", {"depth": depth})
    assert response.status_code == 400 and response.json()["parameter"] == "depth"


def test_search_by_name_account_and_id(regulator_client, world):
    def found(q: str) -> list[str]:
        data = regulator_client.get("/api/v1/entities", {"q": q}).json()
        assert set(data) == {"count", "next", "previous", "results"}
        return [r["name"] for r in data["results"]]

    assert found("控股") == ["控股集团有限公司"]
    assert found("A000000001") == ["李四"]
    assert found(world["holdco"][:8]) == ["控股集团有限公司"]
    assert found(world["p1"][:10]) == []  # no enumerating identity numbers by prefix
    assert found(world["p1"]) == ["张三"]  # the whole number finds the person, still masked
    assert regulator_client.get("/api/v1/entities", {"q": world["p1"]}).json()["results"][0]["id"] == (
        mask_prc_id(world["p1"]))


def test_search_with_permission_shows_ids_and_matches_prefixes(client, insider, world):
    client.force_login(insider)
    data = client.get("/api/v1/entities", {"q": world["p1"][:17]}).json()
    assert [r["id"] for r in data["results"]] == [world["p1"]]
    assert data["results"][0] == {"id": world["p1"], "kind": "person", "name": "张三"}


@pytest.mark.parametrize("path", ["", "/beneficial-owners", "/graph", "list"])
def test_entities_are_for_regulators_only(client, regulator, ledger, world, django_user_model, path):
    url = "/api/v1/entities?q=控股" if path == "list" else f"/api/v1/entities/{world['target']}{path}"
    anonymous = client.get(url)
    assert anonymous.status_code == 401 and anonymous.json()["code"] == "not_authenticated"
    chain = client.get(url, HTTP_AUTHORIZATION=f"Token {ledger.chain.key}")  # known, not allowed
    assert chain.status_code == 403 and chain.json()["code"] == "permission_denied"
    user = django_user_model.objects.create_user("outsider", password="x-pass-12345")
    client.force_login(user)
    outsider = client.get(url)
    assert outsider.status_code == 403 and outsider.json()["code"] == "permission_denied"
    client.force_login(regulator)
    assert client.get(url).status_code == 200
