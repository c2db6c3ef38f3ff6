"""Shared fixtures: one suite for both databases, and the fake Graph API over real HTTP.

`db_url` is parametrized over SQLite (a file per test) and PostgreSQL (a schema per test on
the server at $IGSCHED_TEST_PG_URL). With IGSCHED_REQUIRE_PG=1 (as in CI) an unreachable
PostgreSQL fails the run instead of skipping.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from scheduler.clock import FakeClock, to_aware
from scheduler.emulator import EmulatorState, RunningEmulator

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


def pg_url_for_schema(schema: str) -> str:
    sep = "&" if "?" in PG_URL else "?"
    return f"{PG_URL}{sep}options=-csearch_path%3D{schema}"


@pytest.fixture
def pg_schema_url() -> Iterator[str]:
    global _PG_PROBLEM, _PG_CHECKED
    if not _PG_CHECKED:
        _PG_PROBLEM, _PG_CHECKED = _pg_available(), True
    if _PG_PROBLEM:
        if os.environ.get("IGSCHED_REQUIRE_PG") == "1":
            pytest.fail(f"PostgreSQL required but unreachable at {PG_URL}: {_PG_PROBLEM}")
        pytest.skip(f"PostgreSQL unreachable: {_PG_PROBLEM}")
    schema = "t_" + uuid.uuid4().hex[:12]
    eng = sa.create_engine(PG_URL)
    with eng.begin() as c:
        c.execute(sa.text(f"CREATE SCHEMA {schema}"))
    try:
        yield pg_url_for_schema(schema)
    finally:
        with eng.begin() as c:
            c.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
        eng.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
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
