"""Bulk writes on the ingestion path: one statement per table whatever the number of rows.

PostgreSQL: COPY for append-only rows (about twenty times faster than `bulk_create` here) and
`INSERT … SELECT FROM unnest(arrays) ON CONFLICT` for upserts. SQLite: `executemany`, which the
sqlite3 module runs as one prepared statement.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import connection, models

_JSON_TYPES = {"jsonb", "json"}


def _table_and_types(model: type[models.Model], columns: Sequence[str]) -> tuple[str, list[str]]:
    fields = {f.column: f for f in model._meta.concrete_fields}
    return model._meta.db_table, [fields[c].db_type(connection) or "text" for c in columns]


def _jsonify(model: type[models.Model], columns: Sequence[str],
             rows: Sequence[tuple[Any, ...]]) -> Sequence[tuple[Any, ...]]:
    """JSONField values as JSON text, which both COPY and parameter binding take."""
    json_positions = [i for i, c in enumerate(columns) if _is_json(model, c)]
    if not json_positions:
        return rows
    out = []
    for row in rows:
        values = list(row)
        for i in json_positions:
            values[i] = json.dumps(values[i], ensure_ascii=False)
        out.append(tuple(values))
    return out


def _adapted(model: type[models.Model], columns: Sequence[str],
             rows: Sequence[tuple[Any, ...]]) -> Sequence[tuple[Any, ...]]:
    """Values as the ORM would store them on backends whose driver does not adapt them the same
    way (SQLite keeps aware datetimes as naive UTC text: without this, range queries miss rows)."""
    if connection.vendor == "postgresql":
        return rows
    fields = {f.column: f for f in model._meta.concrete_fields}
    preps = [fields[c].get_db_prep_save for c in columns]
    adapt = [isinstance(fields[c], (models.DateTimeField, models.DecimalField)) for c in columns]
    if not any(adapt):
        return rows
    return [
        tuple(prep(value, connection) if a else value
              for prep, a, value in zip(preps, adapt, row, strict=True))
        for row in rows
    ]


def _quoted(columns: Sequence[str]) -> str:
    qn = connection.ops.quote_name
    return ", ".join(qn(c) for c in columns)


def insert_rows(model: type[models.Model], columns: Sequence[str], rows: Sequence[tuple[Any, ...]]) -> None:
    """Append rows; a uniqueness violation aborts the caller's transaction (nothing half-stored)."""
    if not rows:
        return
    table, _ = _table_and_types(model, columns)
    qn = connection.ops.quote_name
    rows = _adapted(model, columns, _jsonify(model, columns, rows))
    if connection.vendor == "postgresql":
        # The raw psycopg cursor bypasses Django's error translation: wrap it back in.
        with connection.cursor() as cursor, connection.wrap_database_errors:
            sql = f"COPY {qn(table)} ({_quoted(columns)}) FROM STDIN"
            with cursor.cursor.copy(sql) as copy:
                for row in rows:
                    copy.write_row(row)
        return
    placeholders = ", ".join(["%s"] * len(columns))
    with connection.cursor() as cursor:
        cursor.executemany(
            f"INSERT INTO {qn(table)} ({_quoted(columns)}) VALUES ({placeholders})", rows
        )


def upsert_rows(
    model: type[models.Model],
    columns: Sequence[str],
    rows: Sequence[tuple[Any, ...]],
    *,
    conflict: Sequence[str],
    additive: Sequence[str] = (),
    newer_than: str | None = None,
) -> None:
    """Insert or update on `conflict`. `additive` columns add the new value to the stored one;
    `newer_than` names a column the new row must not be older than for the update to apply.
    Rows must be unique on `conflict` (one statement may not touch a row twice)."""
    if not rows:
        return
    table, types = _table_and_types(model, columns)
    qn = connection.ops.quote_name
    updates = []
    for column in columns:
        if column in conflict:
            continue
        if column in additive:
            updates.append(f"{qn(column)} = {qn(table)}.{qn(column)} + excluded.{qn(column)}")
        else:
            updates.append(f"{qn(column)} = excluded.{qn(column)}")
    where = f" WHERE excluded.{qn(newer_than)} >= {qn(table)}.{qn(newer_than)}" if newer_than else ""
    tail = f" ON CONFLICT ({_quoted(conflict)}) DO UPDATE SET {', '.join(updates)}{where}"
    rows = _adapted(model, columns, _jsonify(model, columns, rows))
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # unnest(array, array, …) turns one parameter per column into the rows.
            casts = [("text" if t in _JSON_TYPES else t) for t in types]
            selects = ", ".join(
                f"%s::{cast}[]" for cast in casts
            )
            outputs = ", ".join(
                f"u.c{i}::jsonb" if types[i] in _JSON_TYPES else f"u.c{i}" for i in range(len(columns))
            )
            aliases = ", ".join(f"c{i}" for i in range(len(columns)))
            arrays = [pg_array(column) for column in zip(*rows, strict=True)]
            cursor.execute(
                f"INSERT INTO {qn(table)} ({_quoted(columns)}) "
                f"SELECT {outputs} FROM unnest({selects}) AS u({aliases}){tail}",
                arrays,
            )
        else:
            placeholders = ", ".join(["%s"] * len(columns))
            cursor.executemany(
                f"INSERT INTO {qn(table)} ({_quoted(columns)}) VALUES ({placeholders}){tail}", rows
            )


def _is_json(model: type[models.Model], column: str) -> bool:
    for f in model._meta.concrete_fields:
        if f.column == column:
            return isinstance(f, models.JSONField)
    return False


def existing(model: type[models.Model], column: str, values: Sequence[str],
             **equal: str) -> set[str]:
    """Which of `values` are stored in `column` (with `equal` column filters): one statement."""
    return existing_many([(model, column, values, equal)])[0]


def existing_many(
    lookups: Sequence[tuple[type[models.Model], str, Sequence[str], dict[str, str]]],
) -> list[set[str]]:
    """Several `existing` lookups in one round trip (UNION ALL, tagged by position).

    PostgreSQL gets one array parameter per lookup (`= ANY(%s)`), which plans far faster than an
    IN list of a thousand placeholders; SQLite gets IN lists.
    """
    qn = connection.ops.quote_name
    parts: list[str] = []
    params: list[Any] = []
    for position, (model, column, values, equal) in enumerate(lookups):
        if not values:
            continue
        table = model._meta.db_table
        where = "".join(f" AND {qn(c)} = %s" for c in equal)
        values_params: list[Any]
        if connection.vendor == "postgresql":
            test, values_params = "= ANY(%s::text[])", [pg_array(values)]
        else:
            test, values_params = f"IN ({', '.join(['%s'] * len(values))})", list(values)
        parts.append(f"SELECT {position}, {qn(column)} FROM {qn(table)} WHERE {qn(column)} {test}{where}")
        params += [*values_params, *equal.values()]
    found: list[set[str]] = [set() for _ in lookups]
    if parts:
        with connection.cursor() as cursor:
            cursor.execute(" UNION ALL ".join(parts), params)
            for position, value in cursor.fetchall():
                found[position].add(value)
    return found


def pg_array(values: Sequence[Any]) -> str:
    """A PostgreSQL array literal `{…}` for a parameter cast to `<type>[]`.

    The driver passes one string as it is, where a list is quoted element by element in Python
    (about 10 ms per 1,000-trade block on the ingestion path).
    """
    if all(type(v) is str for v in values):
        if any('"' in v or "\\" in v for v in values):
            values = [v.replace("\\", "\\\\").replace('"', '\\"') for v in values]
        return '{"' + '","'.join(values) + '"}' if values else "{}"
    return "{" + ",".join(_array_element(v) for v in values) + "}"


def _array_element(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, (int, Decimal)):
        return str(value)
    text = value.isoformat() if isinstance(value, datetime) else str(value)
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
