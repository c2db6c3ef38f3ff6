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

PostgreSQL does not use this: its writers run side by side, and a batch taking row locks in
several callers' orders could deadlock with another daemon's batch.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, Generic, TypeVar

from sqlalchemy import Connection
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

T = TypeVar("T")
MAX_BATCH = 128  # a bound on how long one commit keeps its earliest writer waiting


class _Write(Generic[T]):
    __slots__ = ("done", "error", "result", "wake", "work")

    def __init__(self, work: Callable[[Connection], T]) -> None:
        self.work = work
        self.done = False
        self.result: T | None = None
        self.error: BaseException | None = None
        # set when the write is committed (done), or when its thread is handed the lead: one
        # event per write, so a commit wakes its own writers, not every waiting thread
        self.wake = threading.Event()

    def outcome(self) -> T:
        if self.error is not None:
            raise self.error
        return self.result  # type: ignore[return-value]


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
            with self._lock:
                if self._pending:
                    self._pending[0].wake.set()  # its thread leads next
                else:
                    self._leading = False
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
            for item in batch:
                item.done = True
                item.wake.set()

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
