"""The databases tests get (tests/databases.py) are the ones the migrations make.

`db_url` is a copy of one database migrated per session, not a migration per test: here a
copy is compared with a database migrated in place, table by table, column by column, index
by index, and the alembic revision."""

from __future__ import annotations

import json
from typing import Any

import pytest
import sqlalchemy as sa

from scheduler.store import Store
from scheduler.store.engine import current_revision, head_revision, make_engine
from tests import databases


def _plain(value: Any) -> Any:
    """Comparable values: a partial index's predicate is a clause object (equal only to itself)."""
    return json.loads(json.dumps(value, default=str, sort_keys=True))


def _shape(url: str) -> dict[str, Any]:
    engine = make_engine(url)
    try:
        insp = sa.inspect(engine)
        shape: dict[str, Any] = {"revision": current_revision(engine)}
        for table in sorted(insp.get_table_names()):
            shape[table] = {
                "columns": [(c["name"], str(c["type"]), c["nullable"], str(c.get("default")))
                            for c in insp.get_columns(table)],
                "pk": insp.get_pk_constraint(table),
                "fks": insp.get_foreign_keys(table),
                "indexes": sorted(insp.get_indexes(table), key=lambda i: str(i["name"])),
                "unique": sorted(insp.get_unique_constraints(table), key=lambda u: str(u["name"])),
            }
        with engine.connect() as c:
            if engine.dialect.name == "sqlite":
                shape["ddl"] = c.execute(sa.text("SELECT type, name, sql FROM sqlite_master ORDER BY name")).all()
            else:  # with partial indexes' predicates as the server holds them
                schema = c.execute(sa.text("SELECT current_schema()")).scalar_one()
                shape["ddl"] = [(n, d.replace(f" {schema}.", " ")) for n, d in c.execute(sa.text(
                    "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema()"
                    " ORDER BY indexname"))]
                shape["sequences"] = c.execute(sa.text(
                    "SELECT sequence_name FROM information_schema.sequences"
                    " WHERE sequence_schema = current_schema() ORDER BY 1")).all()
        return _plain(shape)  # type: ignore[no-any-return]
    finally:
        engine.dispose()


def test_a_copied_database_equals_one_migrated_in_place(
    empty_db_url: str, request: pytest.FixtureRequest, tmp_path: Any
) -> None:
    Store(empty_db_url).close()  # the seven migrations, run here
    if empty_db_url.startswith("sqlite"):
        copy = databases.copy_sqlite(request.getfixturevalue("_sqlite_template"), tmp_path / "copy.db")
    else:
        copy = str(request.getfixturevalue("pg_migrated_url"))
    migrated, copied = _shape(empty_db_url), _shape(copy)
    assert copied["revision"] == head_revision() == migrated["revision"]
    assert len(copied) > 10, sorted(copied)  # the tables are there, not just alembic_version
    assert len(copied["ddl"]) > 10, copied["ddl"]
    assert copied == migrated
    Store(copy, upgrade=False).close()  # a Store sees it as current
