"""Engines for SQLite and PostgreSQL, and schema migrations (Alembic).

SQLite: WAL, a busy timeout, and every transaction opened with BEGIN IMMEDIATE so that
claims never race (pysqlite's own implicit BEGIN is switched off). PostgreSQL: psycopg 3.
"""

from __future__ import annotations

import functools
import time
from pathlib import Path
from typing import Any

import igsched_migrations  # the top-level migrations/ folder, installed as a package
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine

READ_ONLY = "igsched_read_only"  # execution option: a transaction that only reads
# execution option (SQLite): a connection that runs one SELECT and no BEGIN before it (a lone
# statement reads one snapshot anyway)
ONE_STATEMENT = "igsched_one_statement"
# Connections per engine: the daemon runs at most DB_THREADS store calls at once (its
# database thread pool), whatever its number of workers; a few more for the CLI and duties.
DB_THREADS = 12
POOL_SIZE = DB_THREADS + 4


class SchemaBehind(Exception):
    """The database needs `igsched db upgrade` (or is newer than this igsched)."""


class DatabaseUnreachable(Exception):
    """Connecting failed; the message names the database without its password."""


def normalize_url(url: str) -> str:
    # psycopg 3 is the driver we ship; plain postgresql:// would ask for psycopg2
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def safe_url(url: str) -> str:
    """The URL with any password hidden, for messages."""
    try:
        return sa.engine.make_url(normalize_url(url)).render_as_string(hide_password=True)
    except Exception:
        return "<unparseable database url>"


def make_engine(url: str) -> Engine:
    url = normalize_url(url)
    if url.startswith("sqlite"):
        return _sqlite_engine(url)
    # hide_parameters: a failed statement's message (logged, shown) never carries a post's values
    # PostgreSQL: every connection the daemon uses at once stays open. A pool keeping fewer
    # than that closed a connection at nearly every hand-back in a burst and opened another
    # (a server process forked and authenticated each time): in a 10,000-post run the server
    # was starting backends all along. Three daemons hold at most 3 × (POOL_SIZE + 4), well
    # within the server's default max_connections of 100.
    engine = sa.create_engine(url, pool_size=POOL_SIZE, max_overflow=4, hide_parameters=True)
    _ping_when_idle(engine)
    return engine


PING_AFTER_IDLE_S = 2.0


def _ping_when_idle(engine: Engine) -> None:
    """SQLAlchemy's pre-ping, for connections that rested: one that was back in the pool
    for more than PING_AFTER_IDLE_S is pinged before use (a restarted server, a dropped idle
    connection) and replaced if dead. In a burst most connections come straight back: a ping
    each time doubled the round trips of every store call."""
    @sa.event.listens_for(engine, "connect")
    @sa.event.listens_for(engine, "checkin")
    def _rested_since(_dbapi_conn: Any, record: Any) -> None:
        record.info["igsched_idle_since"] = time.monotonic()

    @sa.event.listens_for(engine, "checkout")
    def _checkout(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("igsched_idle_since")
        if since is not None and time.monotonic() - since <= PING_AFTER_IDLE_S:
            return
        try:
            ping(dbapi_conn)
        except Exception as e:  # the pool replaces the connection and tries again
            raise sa.exc.DisconnectionError("the database connection was dead") from e


def ping(dbapi_conn: Any) -> None:
    cursor = dbapi_conn.cursor()
    try:
        cursor.execute("SELECT 1")
    finally:
        cursor.close()
    dbapi_conn.rollback()  # the ping's implicit transaction: the caller begins its own


def missing_sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL that does not exist yet (None: it exists, or the URL is not
    a SQLite file). A command that only reads must not create it, nor its folders."""
    u = sa.engine.make_url(url)
    if u.get_backend_name() != "sqlite" or not u.database or u.database == ":memory:" \
            or u.database.startswith("file:"):
        return None
    path = Path(u.database)
    try:
        path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return path
    except OSError:
        return None  # there, but not ours to look at: opening it says so (permission denied)
    return None


def _sqlite_engine(url: str) -> Engine:
    u = sa.engine.make_url(url)
    # a "file:" URI (uri=true) names its file itself; anything else gets its folder made
    if u.database and u.database != ":memory:" and not u.database.startswith("file:"):
        Path(u.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    # a pool as large as the daemon's database threads: a connection opened per call (the
    # overflow is closed on return) costs more than the statement
    engine = sa.create_engine(url, connect_args={"timeout": 30, "check_same_thread": False},
                              hide_parameters=True, pool_size=POOL_SIZE, max_overflow=4)

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        # writers take the lock up front (no upgrade deadlocks); readers never wait for it
        options = conn.get_execution_options()
        if options.get(ONE_STATEMENT, False):
            return
        conn.exec_driver_sql("BEGIN" if options.get(READ_ONLY, False) else "BEGIN IMMEDIATE")

    return engine


def _alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(igsched_migrations.__file__).parent))
    return cfg


@functools.cache
def _scripts() -> ScriptDirectory:
    # read once per process: each Store checks the revision, and reading the migration files
    # cost more than the check (the test suite makes hundreds of Stores per run)
    return ScriptDirectory.from_config(_alembic_config())


def head_revision() -> str | None:
    return _scripts().get_current_head()


def current_revision(engine: Engine) -> str | None:
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    except sa.exc.OperationalError as e:
        raise DatabaseUnreachable(f"cannot open database {safe_url(str(engine.url))}: {e.orig}") from None


# pg_advisory_xact_lock key for schema migrations (any constant that no other tool uses)
MIGRATION_LOCK_KEY = 0x1975C4ED


def schema_lock(key: int, wait: bool = True) -> sa.Select[tuple[bool | None]]:
    """The transaction-scoped advisory lock `key` of this schema: advisory locks are per
    database, and igsched instances (or tests) in schemas of their own must not wait for
    each other's. With wait=False, whether it was taken."""
    take = sa.func.pg_advisory_xact_lock if wait else sa.func.pg_try_advisory_xact_lock
    return sa.select(take(sa.literal(key, sa.Integer), sa.func.hashtext(sa.func.coalesce(sa.func.current_schema(), ""))))


def upgrade(engine: Engine) -> None:
    """Apply pending migrations (idempotent)."""
    cfg = _alembic_config()
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # several daemons starting at once on a new database: one migrates, the others
            # wait here and then find the schema current (Alembic reads the version after)
            conn.execute(schema_lock(MIGRATION_LOCK_KEY))
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def ensure_current(engine: Engine, upgrade_if_behind: bool) -> None:
    """Upgrade a new or old database, or say clearly what to do; never a raw SQL error later."""
    current, head = current_revision(engine), head_revision()
    if current == head:
        return
    known = {s.revision for s in _scripts().walk_revisions()}
    if current is not None and current not in known:
        raise SchemaBehind(
            f"the database is at schema revision {current}, which this igsched does not know "
            "(it was upgraded by a newer igsched)"
        )
    if upgrade_if_behind:
        upgrade(engine)
        return
    raise SchemaBehind(
        f"the database schema is {'missing' if current is None else 'behind'}; "
        "run `igsched db upgrade`"
    )
