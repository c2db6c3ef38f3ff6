"""Databases for tests, made fast: a migrated database per test without migrating per test.

Running the six migrations cost about 0.1 s per test (more on a busy machine), and most tests
want a database at the head revision, not a migration. So the migrations run once per test
session (per xdist worker), for real, through `scheduler.store.engine.upgrade`, and each test
gets a copy of the result:

- SQLite: the migrated file is copied into the test's tmp_path.
- PostgreSQL: the statements the migrations sent are recorded (the SELECTs by which Alembic
  looks around are left out) and replayed into the test's new schema in one round trip. The
  alembic_version row comes along, so a Store sees the schema as current.

tests/store/test_templates.py checks that a copy equals a database migrated in place. Tests of
migrations and of `igsched db upgrade` take an empty database (`empty_db_url`).

Dropping a test's schema (about 20 ms on the server) is left to a background thread, so the
next test does not wait for it; the session waits for every drop at its end and fails if one
failed.
"""

from __future__ import annotations

import queue
import shutil
import threading
import uuid
from pathlib import Path
from typing import Any

import psycopg
import sqlalchemy as sa

from scheduler.store import Store
from scheduler.store.engine import make_engine, upgrade


def pg_url_for_schema(base_url: str, schema: str) -> str:
    sep = "&" if "?" in base_url else "?"
    return f"{base_url}{sep}options=-csearch_path%3D{schema}"


def _libpq(url: str) -> str:
    """The SQLAlchemy URL as a libpq connection string (for psycopg itself)."""
    return sa.engine.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def migrated_sqlite(path: Path) -> Path:
    """Migrate a new SQLite file at `path` (the template of every test's database)."""
    Store(f"sqlite:///{path}").close()
    # the last connection closed checkpoints the WAL into the file; a copy of the file alone
    # is then the whole database
    wal = path.with_name(path.name + "-wal")
    assert not wal.exists() or wal.stat().st_size == 0, f"{wal} was left behind"
    return path


def copy_sqlite(template: Path, path: Path) -> str:
    shutil.copyfile(template, path)
    return f"sqlite:///{path}"


class PgSchemas:
    """Schemas of one test session on the server at `base_url` (shared with other sessions:
    only schemas made here are ever dropped)."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self._conn = psycopg.connect(_libpq(base_url), autocommit=True)
        self._ddl: str | None = None
        self._drops: queue.Queue[str | None] = queue.Queue()
        self._drop_errors: list[str] = []
        self._dropper = threading.Thread(target=self._drop_loop, name="drop-test-schemas", daemon=True)
        self._dropper.start()

    def new(self, migrated: bool) -> tuple[str, str]:
        """A new schema, empty or at the head revision: (name, URL)."""
        schema = "t_" + uuid.uuid4().hex[:12]
        ddl = self._migration_ddl() if migrated else ""
        with self._conn.transaction():
            self._conn.execute(f"CREATE SCHEMA {schema}; SET LOCAL search_path TO {schema}; {ddl}".encode())
        return schema, pg_url_for_schema(self.base_url, schema)

    def drop_later(self, schema: str) -> None:
        self._drops.put(schema)

    def close(self) -> None:
        """Wait for every drop; raise if one failed (a schema left on a shared server)."""
        self._drops.put(None)
        self._dropper.join()
        self._conn.close()
        if self._drop_errors:
            raise RuntimeError("dropping test schemas failed: " + "; ".join(self._drop_errors))

    def _drop_loop(self) -> None:
        with psycopg.connect(_libpq(self.base_url), autocommit=True) as conn:
            while (schema := self._drops.get()) is not None:
                try:
                    conn.execute(f"DROP SCHEMA {schema} CASCADE".encode())
                except Exception as e:
                    self._drop_errors.append(f"{schema}: {e}")

    def _migration_ddl(self) -> str:
        if self._ddl is None:
            self._ddl = self._record_migrations()
        return self._ddl

    def _record_migrations(self) -> str:
        schema, url = self.new(migrated=False)
        engine = make_engine(url)
        sent: list[str] = []

        @sa.event.listens_for(engine, "before_cursor_execute")
        def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, _ctx: Any, _many: bool) -> None:
            if statement.lstrip().upper().startswith("SELECT"):
                return  # Alembic reading the catalog (and the advisory lock): no change
            # replayed without parameters, so every write must carry its values as literals;
            # psycopg turns %% into % for a statement sent with (empty) parameters
            assert not parameters, f"a migration statement with parameters cannot be replayed: {statement}"
            sent.append(statement.replace("%%", "%") if parameters is not None else statement)

        try:
            upgrade(engine)
        finally:
            engine.dispose()
            self.drop_later(schema)
        return ";\n".join(sent)
