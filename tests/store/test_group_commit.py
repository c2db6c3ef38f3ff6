"""SQLite group commit (store/group.py): many threads' writes in one transaction; a failing
write fails alone (a batch is run again in savepoints only when the failure had changed
rows); nobody hears back before the commit."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import Connection

from scheduler.store import Store
from scheduler.store.group import GroupCommit, _Write


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[sa.Engine]:
    store = Store(f"sqlite:///{tmp_path / 'g.db'}")  # its engine: WAL, BEGIN IMMEDIATE
    with store.engine.begin() as c:
        c.execute(sa.text("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT NOT NULL)"))
    yield store.engine
    store.close()


class CountingLock:
    """The writer lock, counting the transactions taken under it."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.taken = 0

    def __enter__(self) -> None:
        self.lock.acquire()
        self.taken += 1

    def __exit__(self, *exc: Any) -> None:
        self.lock.release()


def _insert(k: int, v: str | None) -> Any:
    def work(conn: Connection) -> int:
        conn.execute(sa.text("INSERT INTO t (k, v) VALUES (:k, :v)"), {"k": k, "v": v})
        return k
    return work


def test_concurrent_writes_share_transactions_and_fail_alone(engine: sa.Engine) -> None:
    lock = CountingLock()
    group = GroupCommit(engine, lock)
    results: dict[int, Any] = {}
    arrived = threading.Semaphore(0)

    def writer(k: int) -> None:
        arrived.release()
        try:  # every 10th write breaks NOT NULL: it alone must fail
            results[k] = group.run(_insert(k, None if k % 10 == 0 else f"v{k}"))
        except sa.exc.IntegrityError as e:
            results[k] = e

    # the writer lock held (another transaction under way) while the 40 threads arrive: the
    # first leads and waits for it, the others queue, whatever the machine's load
    lock.lock.acquire()
    threads = [threading.Thread(target=writer, args=(k,)) for k in range(40)]
    for t in threads:
        t.start()
    for _ in range(40):
        assert arrived.acquire(timeout=2)
    time.sleep(0.05)  # from arriving to queueing is a few lines
    lock.lock.release()
    for t in threads:
        t.join()
    with engine.connect() as c:
        stored = {r[0] for r in c.execute(sa.text("SELECT k FROM t"))}
    assert stored == {k for k in range(40) if k % 10}
    assert all(isinstance(results[k], sa.exc.IntegrityError) for k in range(0, 40, 10))
    assert all(results[k] == k for k in range(40) if k % 10)
    # grouped: the leader's first batch, then the rest queued in one, run once more after the
    # first failed write that reached the database; far fewer transactions than writes
    assert lock.taken < 20, lock.taken


def test_a_failed_commit_fails_every_write_it_carried(engine: sa.Engine) -> None:
    lock = CountingLock()
    group = GroupCommit(engine, lock)

    @contextmanager
    def no_commit() -> Iterator[None]:
        def refuse(conn: Connection) -> None:
            raise sa.exc.OperationalError("COMMIT", {}, Exception("disk I/O error"))
        sa.event.listen(engine, "commit", refuse)
        try:
            yield
        finally:
            sa.event.remove(engine, "commit", refuse)

    with no_commit(), pytest.raises(sa.exc.OperationalError):
        group.run(_insert(1, "a"))
    assert group.run(_insert(2, "b")) == 2  # the group is usable again
    with engine.connect() as c:
        assert [r[0] for r in c.execute(sa.text("SELECT k FROM t"))] == [2]


def test_a_grouped_write_cannot_nest(engine: sa.Engine) -> None:
    group = GroupCommit(engine, CountingLock())
    with pytest.raises(RuntimeError, match="cannot start another"):
        group.run(lambda conn: group.run(_insert(1, "x")))


def _statements(engine: sa.Engine) -> list[str]:
    seen: list[str] = []
    sa.event.listen(engine, "before_cursor_execute", lambda _c, _cur, stmt, *_: seen.append(stmt))
    return seen


def test_a_write_that_fails_before_changing_rows_fails_alone_in_one_transaction(engine: sa.Engine) -> None:
    """The usual failure (a lost lease, a refused transition: raised before any write): the
    batch goes on in the same transaction, with no savepoint anywhere."""
    lock = CountingLock()
    group = GroupCommit(engine, lock)

    def refused(conn: Connection) -> None:
        conn.execute(sa.text("SELECT count(*) FROM t")).scalar()
        conn.execute(sa.text("UPDATE t SET v = 'x' WHERE k = -1"))  # matches nothing
        raise LookupError("lease lost")

    batch = [_Write(_insert(1, "a")), _Write(refused), _Write(_insert(2, "b"))]
    seen = _statements(engine)
    group._commit(batch)
    assert [w.outcome() for w in (batch[0], batch[2])] == [1, 2]
    with pytest.raises(LookupError):
        batch[1].outcome()
    assert lock.taken == 1 and not any("SAVEPOINT" in q for q in seen), seen
    with engine.connect() as c:
        assert sorted(r[0] for r in c.execute(sa.text("SELECT k FROM t"))) == [1, 2]


def test_a_write_that_fails_after_changing_rows_is_undone_and_the_others_run_again(engine: sa.Engine) -> None:
    lock = CountingLock()
    group = GroupCommit(engine, lock)
    runs: list[int] = []

    def counted(k: int) -> Any:
        insert = _insert(k, f"v{k}")

        def work(conn: Connection) -> int:
            runs.append(k)
            return int(insert(conn))
        return work

    def half_done(conn: Connection) -> None:
        conn.execute(sa.text("INSERT INTO t (k, v) VALUES (99, 'half')"))
        raise ValueError("failed after writing")

    batch = [_Write(counted(1)), _Write(half_done), _Write(counted(2))]
    group._commit(batch)
    assert [w.outcome() for w in (batch[0], batch[2])] == [1, 2]
    with pytest.raises(ValueError):
        batch[1].outcome()
    assert runs == [1, 1, 2]  # the first ran again after the rollback; the last once
    assert lock.taken == 2
    with engine.connect() as c:
        assert sorted(r[0] for r in c.execute(sa.text("SELECT k FROM t"))) == [1, 2]  # no 99


def test_a_transaction_that_ended_during_a_write_is_not_acknowledged(engine: sa.Engine) -> None:
    """SQLite rolls a whole transaction back by itself on some errors (disk full, I/O); a write
    that swallowed such an error must not let the rest of its batch autocommit unseen."""
    group = GroupCommit(engine, CountingLock())

    def swallowed(conn: Connection) -> None:
        conn.execute(sa.text("INSERT INTO t (k, v) VALUES (98, 'lost')"))
        conn.exec_driver_sql("ROLLBACK")  # as SQLite does on an I/O error, caught here

    batch = [_Write(_insert(1, "a")), _Write(swallowed), _Write(_insert(2, "b"))]
    group._commit(batch)
    assert [w.outcome() for w in (batch[0], batch[2])] == [1, 2]
    with pytest.raises(RuntimeError, match="transaction ended"):
        batch[1].outcome()
    with engine.connect() as c:
        assert sorted(r[0] for r in c.execute(sa.text("SELECT k FROM t"))) == [1, 2]


# --- writes submitted from an event loop (Store.call: the daemon's hot writes) ---------------
def test_writes_from_the_event_loop_share_commits_fail_alone_and_need_no_thread_each(engine: sa.Engine) -> None:
    lock = CountingLock()
    group = GroupCommit(engine, lock)
    ran_on: set[str] = set()

    def insert(k: int) -> Any:
        inner = _insert(k, None if k % 10 == 0 else f"v{k}")

        def work(conn: Connection) -> int:
            ran_on.add(threading.current_thread().name)
            return inner(conn)
        return work

    async def main() -> list[Any]:
        lock.lock.acquire()  # another transaction under way while the 50 writes arrive
        futures = [group.submit(insert(k)) for k in range(50)]
        await asyncio.sleep(0.05)
        assert not any(f.done() for f in futures)  # nothing answered before its commit
        lock.lock.release()
        return await asyncio.gather(*futures, return_exceptions=True)

    results = asyncio.run(main())
    assert all(isinstance(results[k], sa.exc.IntegrityError) for k in range(0, 50, 10))
    assert all(results[k] == k for k in range(50) if k % 10)
    with engine.connect() as c:
        assert {r[0] for r in c.execute(sa.text("SELECT k FROM t"))} == {k for k in range(50) if k % 10}
    assert lock.taken < 15, lock.taken  # grouped, not a transaction per write
    assert {name.split("_")[0] for name in ran_on} == {"igsched-group"}  # one thread of the group's own
    group.close()


def test_threads_and_the_event_loop_writing_at_once_all_get_their_answer(engine: sa.Engine) -> None:
    """The lead passes between caller threads and the group's own thread without being lost:
    every write is committed and answered, whichever arrived first."""
    lock = CountingLock()
    group = GroupCommit(engine, lock)
    thread_results: dict[int, Any] = {}

    def writer(k: int) -> None:
        thread_results[k] = group.run(_insert(k, f"t{k}"))

    async def main() -> list[Any]:
        futures = []
        threads = []
        for k in range(60):
            if k % 2:
                futures.append(group.submit(_insert(k, f"l{k}")))
            else:
                t = threading.Thread(target=writer, args=(k,))
                t.start()
                threads.append(t)
            if k % 7 == 0:
                await asyncio.sleep(0.001)
        done = await asyncio.wait_for(asyncio.gather(*futures), 10)
        for t in threads:
            await asyncio.to_thread(t.join, 10)
        return done

    loop_results = asyncio.run(main())
    assert loop_results == list(range(1, 60, 2))
    assert thread_results == {k: k for k in range(0, 60, 2)}
    with engine.connect() as c:
        assert sorted(r[0] for r in c.execute(sa.text("SELECT k FROM t"))) == list(range(60))
    group.close()


def test_a_cancelled_callers_write_still_stands_and_a_failed_commit_fails_all_it_carried(engine: sa.Engine) -> None:
    lock = CountingLock()
    group = GroupCommit(engine, lock)

    def refuse(conn: Connection) -> None:
        raise sa.exc.OperationalError("COMMIT", {}, Exception("disk I/O error"))

    async def main() -> None:
        lock.lock.acquire()
        cancelled = group.submit(_insert(1, "a"))
        cancelled.cancel()  # its caller gave up (a stopping daemon): the write is not taken back
        lock.lock.release()
        assert await group.submit(_insert(2, "b")) == 2
        sa.event.listen(engine, "commit", refuse)
        try:
            lock.lock.acquire()
            failing = [group.submit(_insert(k, "c")) for k in (3, 4, 5)]
            lock.lock.release()
            outcomes = await asyncio.gather(*failing, return_exceptions=True)
        finally:
            sa.event.remove(engine, "commit", refuse)
        assert all(isinstance(o, sa.exc.OperationalError) for o in outcomes)

    asyncio.run(main())
    with engine.connect() as c:
        assert sorted(r[0] for r in c.execute(sa.text("SELECT k FROM t"))) == [1, 2]
    group.close()


def test_a_thread_leading_hands_the_lead_to_the_groups_thread_for_writes_from_the_loop(engine: sa.Engine) -> None:
    """A caller thread leads; a write from the loop arrives behind it. When the thread's own
    write is done, the loop's write must still be committed and answered."""
    lock = CountingLock()
    group = GroupCommit(engine, lock)

    async def main() -> int:
        lock.lock.acquire()  # the thread's commit waits here, leading
        leader = threading.Thread(target=group.run, args=(_insert(1, "thread"),))
        leader.start()
        while not group._leading:  # the thread took the lead
            await asyncio.sleep(0.001)
        await asyncio.sleep(0.02)  # ... and its write left the queue for its commit
        answer = group.submit(_insert(2, "loop"))  # arrives behind it
        lock.lock.release()
        await asyncio.to_thread(leader.join, 5)
        return await asyncio.wait_for(answer, 5)

    assert asyncio.run(main()) == 2
    with engine.connect() as c:
        assert sorted(r[0] for r in c.execute(sa.text("SELECT k FROM t"))) == [1, 2]
    assert not group._leading
    group.close()


def test_a_cancelled_write_in_a_commit_does_not_keep_the_others_from_their_answers(engine: sa.Engine) -> None:
    lock = CountingLock()
    group = GroupCommit(engine, lock)

    async def main() -> list[Any]:
        lock.lock.acquire()
        futures = [group.submit(_insert(k, "x")) for k in range(1, 5)]
        await asyncio.sleep(0.02)  # the group's thread leads, waiting for the lock
        futures[1].cancel()
        lock.lock.release()
        return await asyncio.wait_for(asyncio.gather(futures[0], *futures[2:]), 5)

    assert asyncio.run(main()) == [1, 3, 4]
    with engine.connect() as c:  # the cancelled caller's write stands all the same
        assert sorted(r[0] for r in c.execute(sa.text("SELECT k FROM t"))) == [1, 2, 3, 4]
    group.close()


def test_a_closed_group_takes_writes_again(engine: sa.Engine) -> None:
    group = GroupCommit(engine, CountingLock())

    async def one(k: int) -> int:
        return await group.submit(_insert(k, "x"))

    assert asyncio.run(one(1)) == 1
    group.close()
    assert asyncio.run(one(2)) == 2  # a new thread of its own
    group.close()
