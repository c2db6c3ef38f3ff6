"""A claim reads only the rows it takes: each lane's query is a range of its partial index
in next_action_at order (no sort over the due rows), on both databases; and the number of
statements a claim, a wake-up and an enqueue send does not grow with the queue."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
import sqlalchemy as sa
from sqlalchemy.sql.compiler import SQLCompiler

from scheduler.config import LeadSettings
from scheduler.lifecycle import PostMove, State, TransitionNotAllowed
from scheduler.store import Store
from scheduler.store.accounts import _QUOTA_USAGE
from scheduler.store.attempts import _SET_PERMALINK
from scheduler.store.claims import lane_pick
from scheduler.store.lookahead import next_times, next_times_statement
from scheduler.store.schema import LANE_OTHER, LANE_PUBLISHING
from tests.helpers import counted, image_spec, settings_for

QUEUE = 3000


@pytest.fixture
def store(db_url: str) -> Store:
    s = Store(db_url)
    s.sync_accounts(settings_for(db_url).accounts)
    return s


@contextmanager
def autocommits(store: Store) -> Iterator[list[bool]]:
    """For each statement sent while inside: was its connection in autocommit (no BEGIN, no
    COMMIT around it)?"""
    seen: list[bool] = []

    def note(conn: Any, *_: Any) -> None:
        seen.append(bool(getattr(conn.connection.dbapi_connection, "autocommit", False)))

    sa.event.listen(store.engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", note)


def test_a_read_and_a_media_update_are_one_statement_each(store: Store) -> None:
    """A step's read and its media row's change: one statement each (the lease fence rides in
    the UPDATE); on PostgreSQL in autocommit, so each is one round trip, not three."""
    store.enqueue([image_spec("rt", in_s=-1)], "t")
    [p] = store.claim_due("d", 30, 1)
    with counted(store.engine) as seen, autocommits(store) as autocommit:
        [m] = store.media(p.id)
        store.update_media(p, m.id, container_id="c1", status_code="IN_PROGRESS")
    kinds = [q.lstrip().split()[0].upper() for q in seen if not q.startswith("BEGIN")]
    assert kinds == ["SELECT", "UPDATE"], seen
    if store.dialect == "postgresql":
        assert autocommit == [True, True]
    assert (store.media(p.id)[0].container_id, store.media(p.id)[0].status_code) == ("c1", "IN_PROGRESS")


def _fill(store: Store) -> None:
    """A big queue, every post due now: the case where a sorting claim crawls."""
    store.enqueue([image_spec(f"p{i}", in_s=-30) for i in range(QUEUE)], "t")
    with store.engine.begin() as c:
        # a third of them ready to publish, the rest waiting for their first step
        c.execute(sa.text("UPDATE posts SET state = 'ready' WHERE id % 3 = 0"))
        c.execute(sa.text("ANALYZE posts" if store.dialect == "postgresql" else "ANALYZE"))


def _plan(store: Store, sql: str, params: dict[str, Any]) -> str:
    with store.engine.connect() as c:
        if store.dialect == "sqlite":
            rows = c.execute(sa.text(f"EXPLAIN QUERY PLAN {sql}"), params).all()
            return "\n".join(str(r[-1]) for r in rows)
        return "\n".join(r[0] for r in c.execute(sa.text(f"EXPLAIN {sql}"), params))


def _plan_of(store: Store, statement: sa.ClauseElement, params: dict[str, Any],
             column_keys: list[str] | None = None) -> str:
    """The plan of a statement as the store sends it (`column_keys`: an UPDATE's SET columns)."""
    compiled = cast(SQLCompiler, statement.compile(store.engine, column_keys=column_keys))
    values = compiled.construct_params(params) or {}
    with store.engine.connect() as c:
        if store.dialect == "sqlite":
            rows = c.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}",
                                     tuple(values[k] for k in compiled.positiontup or ())).all()
            return "\n".join(str(r[-1]) for r in rows)
        return "\n".join(r[0] for r in c.exec_driver_sql(f"EXPLAIN {compiled}", values))


@pytest.mark.parametrize(("lane", "index"), [(LANE_PUBLISHING, "ix_posts_claim_publishing"),
                                             (LANE_OTHER, "ix_posts_claim_other")])
def test_each_claim_lane_reads_its_index_in_order_without_sorting(store: Store, lane: str, index: str) -> None:
    _fill(store)
    with store.engine.connect() as c:
        sql = str(lane_pick(c, lane))
    plan = _plan(store, sql.replace(" FOR UPDATE SKIP LOCKED", ""), {"now": store.now(), "n": 16})
    assert index in plan, plan
    assert "TEMP B-TREE" not in plan and "Sort" not in plan, plan
    if store.dialect == "sqlite":
        assert "SCAN posts" not in plan, plan  # a range search, not a walk over the table
    else:
        assert "Index Scan" in plan and "Seq Scan" not in plan, plan


def test_the_next_wake_up_reads_index_entries_only(store: Store) -> None:
    _fill(store)
    with store.engine.connect() as c, counted(store.engine) as seen:
        next_times(c)
    assert len([q for q in seen if q.startswith("SELECT")]) == 1  # posts, actions, webhook events
    sql = str(next_times_statement(store.dialect).compile(store.engine, compile_kwargs={"literal_binds": True}))
    plan = _plan(store, sql, {})
    for index in ("ix_posts_claim_publishing", "ix_posts_claim_other", "ix_posts_lease"):
        assert index in plan, plan
    assert "TEMP B-TREE" not in plan and "Sort" not in plan and "Seq Scan on posts" not in plan, plan
    assert "SCAN events" not in plan, plan  # SQLite: a search of the unhandled, not a walk


def test_an_idle_look_is_one_statement_and_takes_no_writer(store: Store) -> None:
    """The daemon's tick after a claim that took nothing: one SELECT, no BEGIN (SQLite's
    BEGIN IMMEDIATE would take the writer), nothing claimed; with a post due, the claim."""
    store.enqueue([image_spec("later", in_s=3600)], "t", skip_check=LeadSettings())  # staged in 59 min
    with counted(store.engine) as seen:
        claim = store.claim("d", 30, 16, look_first=True)
    assert claim.posts == [] and claim.ahead.posts is not None and not claim.ahead.events_waiting
    assert len(seen) == 1 and seen[0].lstrip().upper().startswith("SELECT"), seen
    store.enqueue([image_spec("due", in_s=-1)], "t")
    with counted(store.engine) as seen:
        claim = store.claim("d", 30, 16, look_first=True)
    assert [p.key for p in claim.posts] == ["due"]
    assert any(s.lstrip().upper().startswith("UPDATE") for s in seen), seen


def test_a_claim_sends_the_same_few_statements_however_long_the_queue(store: Store) -> None:
    _fill(store)
    with counted(store.engine) as seen:
        taken = store.claim_due("d", 30, 16)
    # publishing work first, and it fills the claim: one lane query, one update
    assert len(taken) == 16 and all(p.state == State.READY for p in taken)
    selects = [s for s in seen if s.lstrip().upper().startswith("SELECT")]
    updates = [s for s in seen if s.lstrip().upper().startswith("UPDATE")]
    assert len(selects) == 1 and len(updates) == 1, seen
    with counted(store.engine) as seen:
        store.claim_due("d", 30, QUEUE)  # more than the publishing lane holds: both lanes
    assert len([s for s in seen if s.lstrip().upper().startswith("SELECT")]) == 2


def test_enqueue_sends_statements_by_the_chunk_not_by_the_post(store: Store) -> None:
    specs = [image_spec(f"e{i}", in_s=3600) for i in range(1200)]
    with counted(store.engine) as seen:
        report = store.enqueue(specs, "t")
    assert len(report.new) == 1200
    assert len(seen) <= 20, len(seen)  # 3 key lookups, 3 × (posts, media, events) inserts, …
    again = store.enqueue(specs, "t")
    assert len(again.unchanged) == 1200 and not again.new


def test_with_the_media_check_off_enqueue_plans_the_staging_time_at_once(store: Store) -> None:
    lead = LeadSettings()
    due = datetime.now(UTC) + timedelta(days=30)
    store.enqueue([image_spec("far", in_s=30 * 86400), image_spec("checked", in_s=30 * 86400)], "t")
    store.enqueue([image_spec("skip", in_s=30 * 86400)], "t", skip_check=lead)
    skipped = store.get("skip")
    assert skipped is not None and skipped.preflight == "skipped"
    expected = due.replace(tzinfo=None) - timedelta(seconds=lead.image)
    assert abs((skipped.next_action_at - expected).total_seconds()) < 5
    checked = store.get("checked")
    assert checked is not None and checked.preflight is None  # the check is its first step
    # nothing is due: no claim takes the skipped post before its staging time
    assert sorted(p.key for p in store.claim_due("d", 30, 10)) == ["checked", "far"]


def test_a_due_post_goes_from_claim_to_published_in_three_transactions(store: Store) -> None:
    """What the publish step asks of the store: the claim (with the account's row), the quota
    slot (which hands back the post as it now is), the outcome. No read in between."""
    store.enqueue([image_spec("pub", in_s=-1)], "t")
    [p] = store.claim_due("d", 30, 1)
    store.transition(p, PostMove.TO_READY, "d", container_id="c1", next_action_at=store.now())
    transactions: list[int] = []

    def note(_conn: Any) -> None:
        transactions.append(1)

    sa.event.listen(store.engine, "begin", note)
    try:
        claim = store.claim("d", 30, 16)
        [post] = claim.posts
        assert "shop" in claim.accounts and claim.next_at is not None
        check = store.begin_publish(post, "d", 25)
        assert check.ok and check.post is not None and check.post.state == State.PUBLISHING
        store.transition(check.post, PostMove.MARK_PUBLISHED, "d", media_id="m1", published_at=store.now(),
                         lateness_s=0.1, followup_pending=True)
    finally:
        sa.event.remove(store.engine, "begin", note)
    assert len(transactions) == 3
    done = store.get("pub")
    assert done is not None and done.state == State.PUBLISHED and done.lease_token is None


def test_a_step_as_seen_writes_without_reading_and_a_stale_view_reads_first(store: Store) -> None:
    """A transition from the state the worker saw: one UPDATE fenced by token and state (and
    the event row; on PostgreSQL both in one statement, in no transaction: one round trip).
    From a view that is out of date: the row is read, and the table decides from the state
    as it is."""
    store.enqueue([image_spec("seen", in_s=-1)], "t")
    [p] = store.claim_due("d", 30, 1)
    with counted(store.engine) as seen, autocommits(store) as autocommit:
        after = store.transition(p, PostMove.TO_READY, "d", release=False, container_id="c1")
    if store.dialect == "postgresql":
        assert len(seen) == 1 and seen[0].startswith("WITH moved AS"), seen
        assert autocommit == [True]  # no BEGIN, no COMMIT
        assert "INSERT INTO post_events" in seen[0]
    else:
        kinds = [q.lstrip().split()[0].upper() for q in seen if not q.startswith(("BEGIN", "SAVEPOINT", "RELEASE"))]
        assert kinds == ["UPDATE", "INSERT"], seen
    assert [e["to_state"] for e in store.events(p.id)][-1] == State.READY
    assert after.state == State.READY and after.container_id == "c1" and after.lease_token == p.lease_token
    # `p` still says planned: the UPDATE fenced by that state matches nothing, the row is read
    with counted(store.engine) as seen:
        store.update(p, "d", release=False, reason="stale view")
    assert any(q.lstrip().upper().startswith("SELECT") for q in seen)
    got = store.get("seen")
    assert got is not None and got.state == State.READY and got.reason == "stale view"
    # planned→staging is allowed, ready→staging is not: the table decides from the real state
    with pytest.raises(TransitionNotAllowed):
        store.transition(p, PostMove.TO_STAGING, "d")
    assert store.get("seen").state == State.READY  # type: ignore[union-attr]


def test_the_quota_count_reads_this_account_in_the_window_and_in_flight_only(store: Store) -> None:
    """At every publish the quota is counted under the account's lock: a range of the
    account's publishes in the window and a range of its publishes in flight, not a walk over
    its history or over every post in flight on every account."""
    store.enqueue([image_spec(f"h{i}", in_s=-30) for i in range(QUEUE)], "t")
    with store.engine.begin() as c:
        account = c.execute(sa.text("SELECT account FROM posts LIMIT 1")).scalar_one()
        # a long history, published long ago, and a burst in flight on other accounts
        c.execute(sa.text("UPDATE posts SET state = 'published', published_at = :long_ago WHERE id % 10 <> 0"),
                  {"long_ago": datetime(2025, 1, 1)})
        c.execute(sa.text("UPDATE posts SET state = 'publishing', account = 'elsewhere' WHERE id % 10 = 0"))
        c.execute(sa.text("ANALYZE posts" if store.dialect == "postgresql" else "ANALYZE"))
    since = datetime.now(UTC).replace(tzinfo=None) - timedelta(days=1)
    plan = _plan_of(store, _QUOTA_USAGE, {"name": account, "since": since, "exclude": 0})
    assert "ix_posts_account_published" in plan and "ix_posts_account_flying" in plan, plan
    assert "ix_posts_state_next" not in plan, plan
    if store.dialect == "sqlite":
        assert "MULTI-INDEX OR" in plan and "SCAN posts" not in plan, plan
    else:
        assert "BitmapOr" in plan and "Seq Scan" not in plan, plan


@pytest.mark.parametrize("analysed", ["before the burst", "after it"])
def test_a_bulk_permalink_sets_each_post_through_its_media_id(store: Store, analysed: str) -> None:
    """After a burst, permalinks read in bulk are set post by post by media id: one index
    entry each, not a walk over the account's or every account's published posts; also on
    statistics taken before the burst (the enqueue's, when no post was published yet), on
    which PostgreSQL walked the state index while the statement tested the state."""
    store.enqueue([image_spec(f"m{i}", in_s=-30) for i in range(QUEUE)], "t")
    analyse = sa.text("ANALYZE posts" if store.dialect == "postgresql" else "ANALYZE")
    with store.engine.begin() as c:
        account = c.execute(sa.text("SELECT account FROM posts LIMIT 1")).scalar_one()
        if analysed == "before the burst":
            c.execute(analyse)
        c.execute(sa.text("UPDATE posts SET state = 'published', media_id = '1790' || id"))
        if analysed == "after it":
            c.execute(analyse)
    plan = _plan_of(store, _SET_PERMALINK, {"acct": account, "mid": "17905", "permalink": "https://instagram.example/p/x",
                                            "updated_at": datetime(2026, 1, 1)}, column_keys=["permalink", "updated_at"])
    assert "ix_posts_media_id" in plan, plan
    assert "ix_posts_state_next" not in plan and "Seq Scan" not in plan and "SCAN posts" not in plan, plan


def _analyses(seen: list[str]) -> int:
    return sum(1 for q in seen if q.lstrip().upper().startswith("ANALYZE"))


def test_a_bulk_enqueue_leaves_the_planner_statistics_current(store: Store) -> None:
    """PostgreSQL: a posts table never analysed is planned on default guesses, and the
    lookahead at every claim then gathers and sorts every post of a lane. An enqueue that
    adds that many posts analyses the table at once; without it the wake-up below sorts."""
    with counted(store.engine) as seen:
        store.enqueue([image_spec(f"b{i}", in_s=-30) for i in range(QUEUE)], "t")
    assert _analyses(seen) == (1 if store.dialect == "postgresql" else 0), seen
    with store.engine.begin() as c:  # the burst moves a third on; no ANALYZE since the enqueue
        c.execute(sa.text("UPDATE posts SET state = 'ready' WHERE id % 3 = 0"))
    sql = str(next_times_statement(store.dialect).compile(store.engine, compile_kwargs={"literal_binds": True}))
    plan = _plan(store, sql, {})
    for index in ("ix_posts_claim_publishing", "ix_posts_claim_other"):
        assert index in plan, plan
    assert "Sort" not in plan and "Bitmap" not in plan and "TEMP B-TREE" not in plan, plan


def test_an_enqueue_small_beside_the_known_posts_does_not_analyse(store: Store) -> None:
    """ANALYZE samples the whole table: only an enqueue that adds a tenth of the posts the
    statistics know (or to a table never analysed) pays for it, not every queue file."""
    store.enqueue([image_spec(f"k{i}", in_s=3600) for i in range(QUEUE)], "t")
    with counted(store.engine) as seen:
        store.enqueue([image_spec(f"s{i}", in_s=3600) for i in range(QUEUE // 10 - 10)], "t")
    assert _analyses(seen) == 0, seen
    with counted(store.engine) as seen:
        store.enqueue([image_spec(f"t{i}", in_s=3600) for i in range(QUEUE // 5)], "t")
    assert _analyses(seen) == (1 if store.dialect == "postgresql" else 0), seen
