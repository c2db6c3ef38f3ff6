"""Shared fixtures: one suite for both databases, and the fake Graph API over real HTTP.

`db_url` is parametrized over SQLite (a file per test) and PostgreSQL (a schema per test on
the server at $IGSCHED_TEST_PG_URL), each at the head revision, copied from one migrated once
per session (tests/databases.py); `empty_db_url` is the same without tables. With
IGSCHED_REQUIRE_PG=1 (as in CI) an unreachable PostgreSQL fails the run instead of skipping.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from scheduler.clock import FakeClock, to_aware
from scheduler.emulator import EmulatorState, RunningEmulator
from tests import databases

PG_URL = os.environ.get("IGSCHED_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def _pg_available() -> str | None:
    try:
        eng = sa.create_engine(PG_URL, connect_args={"connect_timeout": 3})
        with eng.connect() as c:
            c.execute(sa.text("SELECT 1"))
        eng.dispose()
        return None
    except Exception as e:
        return str(e).splitlines()[0]


_PG_PROBLEM: str | None = None
_PG_CHECKED = False


def _require_pg() -> None:
    global _PG_PROBLEM, _PG_CHECKED
    if not _PG_CHECKED:
        _PG_PROBLEM, _PG_CHECKED = _pg_available(), True
    if _PG_PROBLEM:
        if os.environ.get("IGSCHED_REQUIRE_PG") == "1":
            pytest.fail(f"PostgreSQL required but unreachable at {PG_URL}: {_PG_PROBLEM}")
        pytest.skip(f"PostgreSQL unreachable: {_PG_PROBLEM}")


@pytest.fixture(scope="session")
def _pg_schemas() -> Iterator[databases.PgSchemas]:
    _require_pg()
    schemas = databases.PgSchemas(PG_URL)
    yield schemas
    schemas.close()


def _pg_schema(request: pytest.FixtureRequest, migrated: bool) -> Iterator[str]:
    _require_pg()
    schemas: databases.PgSchemas = request.getfixturevalue("_pg_schemas")
    schema, url = schemas.new(migrated)
    yield url
    schemas.drop_later(schema)


@pytest.fixture
def pg_schema_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """An empty schema: what a new PostgreSQL database is to igsched."""
    yield from _pg_schema(request, migrated=False)


@pytest.fixture
def pg_migrated_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A schema at the head revision (tests/databases.py)."""
    yield from _pg_schema(request, migrated=True)


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return databases.migrated_sqlite(tmp_path_factory.mktemp("template") / "igsched.db")


DBS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=DBS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database at the head revision, as `Store(url)` leaves a new one (tests/databases.py)."""
    if request.param == "sqlite":
        return databases.copy_sqlite(request.getfixturevalue("_sqlite_template"), tmp_path / "igsched.db")
    return str(request.getfixturevalue("pg_migrated_url"))


@pytest.fixture(params=DBS)
def empty_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database without tables, for the tests of migrations and of `igsched db upgrade`."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'igsched.db'}"
    return str(request.getfixturevalue("pg_schema_url"))


@pytest.fixture
def clock() -> FakeClock:
    """The test's clock: it runs with real time until a test (or run_daemon's `warp`) moves it
    forward. The emulator reads it; a Store reads it when given it (`Store(url, clock=clock)`)."""
    return FakeClock(running=True)


@pytest.fixture
def emulator(clock: FakeClock) -> Iterator[RunningEmulator]:
    with RunningEmulator(EmulatorState(clock=lambda: to_aware(clock.now()).timestamp())) as emu:
        yield emu


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # the slow tests first: pytest-xdist (addopts: -n 2 --dist worksteal) hands each worker a
    # contiguous share and steals from the end of a share, so they stay together on the first
    # worker, at the start instead of in a long tail
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(autouse=True)
def _one_slow_test_at_a_time(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Slow tests (crashes under kill -9, three daemons sharing a queue) each want most of the
    machine, and two at once could exhaust the server's max_connections with their daemons'
    pools: across xdist workers, one at a time."""
    if request.node.get_closest_marker("slow") is None or "PYTEST_XDIST_WORKER" not in os.environ:
        yield
        return
    # the workers' basetemps share their parent, which belongs to this run alone
    with open(tmp_path_factory.getbasetemp().parent / "slow-tests.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield
