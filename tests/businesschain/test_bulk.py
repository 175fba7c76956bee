"""The bulk writers' PostgreSQL array literals read back as the values that went in."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.db import connection

from businesschain.bulk import existing_many, pg_array
from businesschain.models import Chain, Entity

pytestmark = pytest.mark.django_db

pg_only = pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL array literals")

AWKWARD = ["plain", 'a "quoted" name', "back\\slash", "NULL", "", "comma,brace{}", "空格 与 中文", "\\\""]


@pg_only
@pytest.mark.parametrize("values", [AWKWARD, [], ["91310000MA1FL0000X"]])
def test_text_arrays_round_trip(values):
    with connection.cursor() as cursor:
        cursor.execute("SELECT %s::text[]", [pg_array(values)])
        assert cursor.fetchone()[0] == values


@pg_only
def test_mixed_values_round_trip():
    at = datetime(2026, 11, 21, 1, 2, 3, 456000, tzinfo=UTC)
    with connection.cursor() as cursor:
        cursor.execute("SELECT %s::bigint[], %s::numeric[], %s::timestamptz[], %s::boolean[], %s::text[]", [
            pg_array([1, -2, None]), pg_array([Decimal("10.50"), Decimal("-0.001")]), pg_array([at]),
            pg_array([True, False]), pg_array(["x", None]),
        ])
        assert cursor.fetchone() == ([1, -2, None], [Decimal("10.50"), Decimal("-0.001")], [at],
                                     [True, False], ["x", None])


def test_existing_many_finds_awkward_identifiers():
    chain = Chain.objects.create(id="sse", name="上证链")
    for entity_id in ('a "quoted" name', "back\\slash"):
        Entity.objects.create(id=entity_id, kind="org", name="x", id_type="OTHER", chain=chain,
                              tx_id="00" * 32, height=0)
    found = existing_many([(Entity, "id", AWKWARD, {})])
    assert found == [{'a "quoted" name', "back\\slash"}]
