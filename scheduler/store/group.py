"""Group commit for SQLite: the writes of many threads in one transaction, each in a savepoint.

Why: SQLite has one writer. With a transaction per write, the daemon's database threads take
turns at the write lock, and each turn costs a BEGIN IMMEDIATE, a COMMIT and a hand-over
between threads that also compete for the GIL; in a burst of 1,000 publishes that hand-over,
not the statements, set the pace. Here the first thread to arrive leads: it takes every write
waiting at that moment, runs each in its own savepoint inside one transaction and commits
once; the others wait for that commit. A write that fails rolls back its savepoint only and
raises in its own caller, exactly as it would alone; a failed commit raises in every caller
whose write it carried. Nobody's write is acknowledged before the commit that holds it.

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

T = TypeVar("T")
MAX_BATCH = 128  # a bound on how long one commit keeps its earliest writer waiting


class _Write(Generic[T]):
    __slots__ = ("done", "error", "result", "work")

    def __init__(self, work: Callable[[Connection], T]) -> None:
        self.work = work
        self.done = False
        self.result: T | None = None
        self.error: BaseException | None = None

    def outcome(self) -> T:
        if self.error is not None:
            raise self.error
        return self.result  # type: ignore[return-value]


class GroupCommit:
    def __init__(self, engine: Engine, writer: AbstractContextManager[Any]) -> None:
        """`writer`: the lock every SQLite write of this process takes (Store._writer), so a
        batch and a plain transaction never wait for each other inside SQLite."""
        self._engine = engine
        self._writer = writer
        self._cv = threading.Condition()
        self._pending: list[_Write[Any]] = []
        self._leading = False
        self._local = threading.local()

    def run(self, work: Callable[[Connection], T]) -> T:
        """Run `work(conn)` in a transaction shared with other threads' writes; return what it
        returned (or raise what it raised) once that transaction committed."""
        if getattr(self._local, "leading", False):
            raise RuntimeError("a grouped write cannot start another grouped write")
        item = _Write(work)
        with self._cv:
            self._pending.append(item)
            while self._leading and not item.done:
                self._cv.wait()
            if item.done:
                return item.outcome()
            self._leading = True
        try:
            while not item.done:
                with self._cv:
                    batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
                self._commit(batch)
        finally:
            with self._cv:
                self._leading = False
                self._cv.notify_all()
        return item.outcome()

    def _commit(self, batch: list[_Write[Any]]) -> None:
        self._local.leading = True
        try:
            with self._writer, self._engine.begin() as conn:
                if len(batch) == 1:  # alone: no savepoint needed, its error rolls back all
                    batch[0].result = batch[0].work(conn)
                else:
                    for item in batch:
                        # plain SQL savepoints: SQLAlchemy's own (begin_nested) build and key
                        # a statement each time, which cost more than the writes themselves
                        conn.exec_driver_sql("SAVEPOINT igsched_group")
                        try:
                            item.result = item.work(conn)
                        except Exception as e:
                            item.error = e
                            conn.exec_driver_sql("ROLLBACK TO SAVEPOINT igsched_group")
                        conn.exec_driver_sql("RELEASE SAVEPOINT igsched_group")
        except BaseException as e:  # the commit (or a lone write) failed: nothing of it stands
            for item in batch:
                if item.error is None:
                    item.result, item.error = None, e
        finally:
            self._local.leading = False
            with self._cv:
                for item in batch:
                    item.done = True
                self._cv.notify_all()
