"""The OpenAPI schema and its interactive view are served from our own files."""

import pytest

pytestmark = pytest.mark.django_db


def test_schema_is_openapi_3_and_lists_the_ecp_endpoints(client):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    assert "/api/v1/chains/{chain}/blocks" in schema["paths"]


def test_docs_page_uses_no_cdn(client):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "/static/drf_spectacular_sidecar/" in html
    assert "cdn" not in html.lower()
