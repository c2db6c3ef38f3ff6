"""Keeping PostgreSQL's planner statistics in step with a bulk enqueue.

A posts table whose statistics predate a bulk enqueue (never analysed: a new database, or one
that held a tenth as many posts) is planned on default guesses: the lookahead at every claim
then gathers every post of a lane and sorts it (3–12 ms with 3,000–10,000 posts queued)
instead of reading one index entry. Autovacuum puts this right only at its next round, up to
a minute later, which is when a burst enqueued for the next minute runs. So an enqueue that
adds that many posts analyses the table at once, as PostgreSQL advises after a bulk load.

SQLite is left alone: its hot statements name their indexes (INDEXED BY), and ANALYZE would
hand its planner figures that no test has seen.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager

import sqlalchemy as sa
from sqlalchemy import Connection
from sqlalchemy.exc import SQLAlchemyError

log = logging.getLogger(__name__)

# autovacuum's own rule (autovacuum_analyze_scale_factor 0.1), applied at the enqueue instead
# of at its next round; below MIN_NEW a default guess costs little
SCALE = 0.1
MIN_NEW = 200

_ROWS = sa.text("SELECT reltuples FROM pg_class WHERE oid = to_regclass('posts')")


def statistics_behind(conn: Connection, new_posts: int) -> bool:
    """Whether `new_posts` just enqueued leave the posts table's statistics behind: it was
    never analysed, or they add more than a tenth of the rows its statistics know."""
    if conn.dialect.name != "postgresql" or new_posts < MIN_NEW:
        return False
    known = conn.execute(_ROWS).scalar()
    return known is None or known < 0 or new_posts > SCALE * known


def analyse_posts(begin: Callable[[], AbstractContextManager[Connection]]) -> bool:
    """ANALYZE posts and their media in a transaction from `begin`, waiting a second at most
    for a lock (autovacuum may be at the table, and then does the same). Best effort: the
    enqueue before it has committed, so a failure (the lock, no connection free in time, a
    database gone in between) is logged by its kind, with no statement or parameters, and
    never raised. A role that does not own the table is refused by PostgreSQL with a warning
    only: its statistics are then autovacuum's alone."""
    try:
        with begin() as conn:
            conn.exec_driver_sql("SET LOCAL lock_timeout = '1s'")  # this transaction only
            conn.exec_driver_sql("ANALYZE posts, post_media")
    except SQLAlchemyError as e:
        log.info("posts not analysed after the enqueue (%s); autovacuum will",
                 type(getattr(e, "orig", None) or e).__name__)
        return False
    return True
