"""PostgreSQL: the ANALYZE after a bulk enqueue never holds the enqueue up for long. Behind a
lock on the table (autovacuum at work, or an operator's maintenance) it gives up after a
second and leaves the statistics to autovacuum; the posts are enqueued either way."""

from __future__ import annotations

import logging
import time

import pytest
import sqlalchemy as sa

from scheduler.store import Store
from tests.helpers import image_spec, settings_for

pytestmark = pytest.mark.postgres


def test_an_enqueue_behind_a_lock_on_posts_gives_up_its_analyse_not_its_posts(
        pg_migrated_url: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="scheduler.store.planner")
    store = Store(pg_migrated_url)
    store.sync_accounts(settings_for(pg_migrated_url).accounts)
    other = sa.create_engine(pg_migrated_url)
    try:
        with other.connect() as holder:
            holder.execute(sa.text("LOCK TABLE posts IN SHARE UPDATE EXCLUSIVE MODE"))  # as autovacuum does
            t0 = time.monotonic()
            report = store.enqueue([image_spec(f"l{i}", in_s=3600) for i in range(500)], "t")
            waited = time.monotonic() - t0
            holder.rollback()
        assert len(report.new) == 500
        assert len(store.list_posts(["planned"])) == 500
        assert 1.0 <= waited < 10, waited  # it waited for the lock a second, then went on
        assert "posts not analysed after the enqueue (LockNotAvailable); autovacuum will" in caplog.text
    finally:
        other.dispose()
        store.close()
