"""Group commit for SQLite: the writes of many threads in one transaction, each in a savepoint.

Why: SQLite has one writer. With a transaction per write, the daemon's database threads take
turns at the write lock, and each turn costs a BEGIN IMMEDIATE, a COMMIT and a hand-over
between threads that also compete for the GIL; in a burst of 1,000 publishes that hand-over,
not the statements, set the pace. Here the first thread to arrive leads: it takes every write
waiting at that moment, runs them one after another inside one transaction and commits once;
the others wait for that commit. A write that fails raises in its own caller, exactly as it
would alone, and takes nobody else's write with it: most failures (a lost lease, a transition
the table refuses) happen before the write changed a row, which SQLite's change counter
tells, and the batch goes on; a write that failed after changing rows has the whole batch
rolled back and the others run again, each in a savepoint (a savepoint per write costs two
statements more, and the failure is rare). A failed commit raises in every caller whose write
it carried. Nobody's write is acknowledged before the commit that holds it.

The daemon's hot writes come from its event loop (`submit`, through `Store.call`): they join
the same groups without a thread each, a thread of the group's own leads when no caller
thread does, and a commit answers all of them in one hand-over to the loop. A thread per
write cost a wake-up to start it, one to end it and one to tell the loop, for every write.

PostgreSQL does not use this: its writers run side by side, and a batch taking row locks in
several callers' orders could deadlock with another daemon's batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from typing import Any, Generic, TypeVar

from sqlalchemy import Connection
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

T = TypeVar("T")
log = logging.getLogger(__name__)
MAX_BATCH = 128  # a bound on how long one commit keeps its earliest writer waiting


class _Write(Generic[T]):
    __slots__ = ("done", "error", "future", "result", "wake", "work")

    def __init__(self, work: Callable[[Connection], T], future: asyncio.Future[T] | None = None) -> None:
        self.work = work
        self.done = False
        self.result: T | None = None
        self.error: BaseException | None = None
        # a write from the event loop (submit) is answered through its future, in the loop;
        # a thread's write (run) waits for its event, set when the write is committed (done),
        # or when its thread is handed the lead: one event per write, so a commit wakes its
        # own writers, not every waiting thread
        self.future = future
        self.wake = threading.Event() if future is None else None

    def outcome(self) -> T:
        if self.error is not None:
            raise self.error
        return self.result  # type: ignore[return-value]


def _settle(items: list[_Write[Any]]) -> None:
    """In the event loop: answer the committed writes submitted from it (each on its own: one
    answer that cannot be given must not keep the others from theirs)."""
    for item in items:
        fut = item.future
        assert fut is not None
        if fut.done():  # its caller was cancelled (the write stands all the same)
            continue
        try:
            if item.error is not None:
                fut.set_exception(item.error)
            else:
                fut.set_result(item.result)
        except Exception as e:  # e.g. an error that cannot be raised through a future
            fut.set_exception(RuntimeError(f"the write's outcome could not be delivered: {type(e).__name__}"))


class _Redo(Exception):
    """A write failed after changing rows: roll the batch back, run the others again."""


class GroupCommit:
    def __init__(self, engine: Engine, writer: AbstractContextManager[Any]) -> None:
        """`writer`: the lock every SQLite write of this process takes (Store._writer), so a
        batch and a plain transaction never wait for each other inside SQLite."""
        self._engine = engine
        self._writer = writer
        self._lock = threading.Lock()
        self._pending: list[_Write[Any]] = []
        self._leading = False
        self._local = threading.local()
        # leads the writes submitted from the event loop when no thread is leading: their
        # callers hold no thread of their own
        self._drainer: ThreadPoolExecutor | None = None

    def submit(self, work: Callable[[Connection], T]) -> asyncio.Future[T]:
        """From the event loop: `work(conn)` joins the next group commit like a thread's
        write, without a thread of its own waiting for it; the future is answered in the
        loop, once the transaction holding the write committed (all writes of one commit are
        answered in one hand-over to the loop)."""
        item: _Write[T] = _Write(work, asyncio.get_running_loop().create_future())
        with self._lock:
            if not self._leading:
                # started under the lock: should no thread be had, nothing was queued and
                # nobody waits behind a lead that never began
                self._start_drain()
                self._leading = True
            self._pending.append(item)
        assert item.future is not None
        return item.future

    def close(self) -> None:
        """Wait for the writes under way to be committed (and answered). The group stays
        usable: a later write starts a new thread."""
        with self._lock:
            drainer, self._drainer = self._drainer, None
        if drainer is not None:
            drainer.shutdown(wait=True)

    def _start_drain(self) -> None:
        """Hand the lead to the group's own thread (called with self._lock held)."""
        if self._drainer is None:
            self._drainer = ThreadPoolExecutor(1, "igsched-group")
        self._drainer.submit(self._drain)

    def _drain(self) -> None:
        """Lead until no write is waiting (the lead was taken for this thread)."""
        while True:
            with self._lock:
                if not self._pending:
                    self._leading = False
                    return
                batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
            try:
                self._commit(batch)
            except Exception:  # _commit answers every write of the batch whatever happens
                log.exception("a group commit failed unexpectedly")

    def run(self, work: Callable[[Connection], T]) -> T:
        """Run `work(conn)` in a transaction shared with other threads' writes; return what it
        returned (or raise what it raised) once that transaction committed."""
        if getattr(self._local, "leading", False):
            raise RuntimeError("a grouped write cannot start another grouped write")
        item = _Write(work)
        with self._lock:
            self._pending.append(item)
            lead = not self._leading
            self._leading = True
        assert item.wake is not None
        if not lead:
            item.wake.wait()
            if item.done:
                return item.outcome()
            # handed the lead by the leader before: our write is still waiting, first in line
        try:
            while not item.done:
                with self._lock:
                    batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
                self._commit(batch)
        finally:
            lead_on = False
            with self._lock:
                if not self._pending:
                    self._leading = False
                elif (wake := self._pending[0].wake) is not None:
                    wake.set()  # its thread leads next
                else:  # submitted from the loop: no thread of its own to lead
                    try:
                        self._start_drain()
                    except RuntimeError:  # no thread to be had: this one leads them
                        lead_on = True
            if lead_on:
                self._drain()
        return item.outcome()

    def _commit(self, batch: list[_Write[Any]]) -> None:
        self._local.leading = True
        try:
            try:
                with self._writer, self._engine.begin() as conn:
                    self._run(conn, batch)
            except _Redo:
                rest = [item for item in batch if item.error is None]
                with self._writer, self._engine.begin() as conn:
                    self._run_in_savepoints(conn, rest)
        except BaseException as e:  # the commit (or a lone write) failed: nothing of it stands
            for item in batch:
                if item.error is None:
                    item.result, item.error = None, e
        finally:
            self._local.leading = False
            submitted: dict[asyncio.AbstractEventLoop, list[_Write[Any]]] = {}
            for item in batch:
                item.done = True
                if item.wake is not None:
                    item.wake.set()
                else:
                    assert item.future is not None
                    submitted.setdefault(item.future.get_loop(), []).append(item)
            for loop, items in submitted.items():
                with contextlib.suppress(RuntimeError):  # its loop is closed: nobody waits
                    loop.call_soon_threadsafe(_settle, items)

    @staticmethod
    def _run(conn: Connection, batch: list[_Write[Any]]) -> None:
        if len(batch) == 1:  # alone: its error rolls back all there is
            batch[0].result = batch[0].work(conn)
            return
        raw = conn.connection.dbapi_connection
        assert raw is not None
        for item in batch:
            before = raw.total_changes
            try:
                item.result = item.work(conn)
            except Exception as e:
                item.error = e
                if isinstance(e, DBAPIError) or raw.total_changes != before or not raw.in_transaction:
                    raise _Redo from e
            else:
                if not raw.in_transaction:  # SQLite rolled it all back itself (an I/O error caught)
                    item.result, item.error = None, RuntimeError("the transaction ended during the write")
                    raise _Redo

    @staticmethod
    def _run_in_savepoints(conn: Connection, batch: list[_Write[Any]]) -> None:
        for item in batch:
            # plain SQL savepoints: SQLAlchemy's own (begin_nested) build and key a statement
            # each time, which cost more than the writes themselves
            conn.exec_driver_sql("SAVEPOINT igsched_group")
            try:
                item.result = item.work(conn)
            except Exception as e:
                item.error = e
                conn.exec_driver_sql("ROLLBACK TO SAVEPOINT igsched_group")
            conn.exec_driver_sql("RELEASE SAVEPOINT igsched_group")
