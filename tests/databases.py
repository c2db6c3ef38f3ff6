"""Databases for tests, made fast: a migrated database per test without migrating per test.

Running the seven migrations cost about 0.1 s per test (more on a busy machine), and most tests
want a database at the head revision, not a migration. So the migrations run once per test
session (per xdist worker), for real, through `scheduler.store.engine.upgrade`, and each test
gets a copy of the result:

- SQLite: the migrated file is copied into the test's tmp_path.
- PostgreSQL: the statements the migrations sent are recorded (the SELECTs by which Alembic
  looks around are left out) and replayed into the test's new schema in one round trip. The
  alembic_version row comes along, so a Store sees the schema as current.

tests/store/test_templates.py checks that a copy equals a database migrated in place. Tests of
migrations and of `igsched db upgrade` take an empty database (`empty_db_url`).

PostgreSQL schemas are made ahead and dropped after use by a background thread, so a test
seldom waits for either (about 80 ms and 20 ms on the server); the session drops every schema
it made at its end and fails if that failed.
"""

from __future__ import annotations

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
    """Connections to the schema carry its name (application_name), so that the connections
    a test left open are closed when its schema is dropped. `options` stays last: tests
    append further `-c` settings to it."""
    sep = "&" if "?" in base_url else "?"
    return f"{base_url}{sep}application_name={schema}&options=-csearch_path%3D{schema}"


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
    only schemas made here are ever dropped).

    A background thread keeps `STOCK` migrated schemas ready and drops used ones, so the
    server builds the next test's schema while this one runs (most tests spend their time
    waiting on a daemon or the fake Graph API)."""

    STOCK = 2

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self._conn = psycopg.connect(_libpq(base_url), autocommit=True)
        self._ddl: str | None = None
        self._lock = threading.Condition()
        self._ready: list[str] = []
        self._drops: list[str] = []
        self._closing = False
        self._errors: list[str] = []
        self._worker: threading.Thread | None = None

    def new(self, migrated: bool) -> tuple[str, str]:
        """A new schema, empty or at the head revision: (name, URL)."""
        if not migrated:
            schema = _new_name()
            self._conn.execute(f"CREATE SCHEMA {schema}".encode())
            return schema, pg_url_for_schema(self.base_url, schema)
        if self._ddl is None:
            self._ddl = self._record_migrations()
            self._worker = threading.Thread(target=self._work, name="test-schemas", daemon=True)
            self._worker.start()
        with self._lock:
            self._lock.notify_all()
            while not self._ready and not self._errors:
                self._lock.wait()
            if self._errors:
                raise RuntimeError("making a test schema failed: " + "; ".join(self._errors))
            schema = self._ready.pop(0)
            self._lock.notify_all()  # make the next one
        return schema, pg_url_for_schema(self.base_url, schema)

    def drop_later(self, schema: str) -> None:
        with self._lock:
            self._drops.append(schema)
            self._lock.notify_all()

    def close(self) -> None:
        """Drop every schema made here; raise if a drop failed (a schema left on a shared
        server)."""
        with self._lock:
            self._closing = True
            self._drops += self._ready
            self._ready.clear()
            self._lock.notify_all()
        if self._worker is not None:
            self._worker.join()
        else:
            self._drop_all(self._conn)
        self._conn.close()
        if self._errors:
            raise RuntimeError("test schemas: " + "; ".join(self._errors))

    def _work(self) -> None:
        with psycopg.connect(_libpq(self.base_url), autocommit=True) as conn:
            while True:
                with self._lock:
                    while not (self._drops or self._closing or len(self._ready) < self.STOCK):
                        self._lock.wait()
                    if self._closing:
                        break
                    # the next test's schema first, then the drops
                    drop = self._drops.pop(0) if len(self._ready) >= self.STOCK else None
                if drop is not None:
                    self._drop(conn, drop)
                    continue
                schema = _new_name()
                try:
                    with conn.transaction():
                        conn.execute(f"CREATE SCHEMA {schema}; SET LOCAL search_path TO {schema}; {self._ddl}".encode())
                except Exception as e:
                    with self._lock:
                        self._errors.append(f"{schema}: {e}")
                        self._lock.notify_all()
                    return
                with self._lock:
                    self._ready.append(schema)
                    self._lock.notify_all()
            self._drop_all(conn)

    def _drop_all(self, conn: psycopg.Connection[Any]) -> None:
        with self._lock:
            drops, self._drops = self._drops, []
        for schema in drops:
            self._drop(conn, schema)

    def _drop(self, conn: psycopg.Connection[Any], schema: str) -> None:
        try:
            # Stores a test did not close keep their pooled connections until collected; on a
            # server shared by several runs (max_connections) they are closed here
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                         " WHERE application_name = %s AND pid <> pg_backend_pid()", (schema,))
            conn.execute(f"DROP SCHEMA {schema} CASCADE".encode())
        except Exception as e:
            with self._lock:
                self._errors.append(f"dropping {schema}: {e}")

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


def _new_name() -> str:
    return "t_" + uuid.uuid4().hex[:12]
