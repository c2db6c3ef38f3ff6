"""The call-log flusher: writes Graph call rows, usage figures and pauses in the background.

Calls are noted in memory as they finish (the event loop must never wait for the database)
and written every `interval_s`. When the database refuses (disk full, read-only, down), the
rows are kept for the next try, which waits longer each time (up to MAX_BACKOFF_S), and each
kind of failure is logged once — by its exception type and first line, never with the SQL
statement or its parameters — until a write succeeds again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import datetime

from scheduler.failures import failure_kind
from scheduler.graph.client import CallRecord
from scheduler.store import Store, UsageFigures

log = logging.getLogger(__name__)
APP = "*"  # the scope of an app-wide pause (pauses.APP)
FIRST_BACKOFF_S = 0.5
MAX_BACKOFF_S = 60.0
# An account's usage figures that have not changed since this daemon wrote them are written
# again only this long after: every call brings them, and each write locks the account's row,
# which a publish of the account (another daemon's too) locks for its quota count. Readers take
# figures up to an hour old (pauses.USAGE_WINDOW), so their time lags by this at most.
USAGE_REWRITE_S = 60.0


class CallLog:
    def __init__(self, store: Store, interval_s: float = 0.5,
                 timer: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.interval_s = interval_s
        self._timer = timer  # for the backoff: wall time, whatever clock the pipeline uses
        self.calls: list[CallRecord] = []
        self._writing: list[CallRecord] = []  # taken by a flush, not yet committed
        self.pauses: list[tuple[str, datetime, str]] = []  # (scope, until, reason)
        self.usage: dict[str, UsageFigures] = {}
        self._usage_written: dict[str, tuple[UsageFigures, float]] = {}  # account: (figures, timer())
        self.failures = 0
        self._seen_kinds: set[str] = set()
        self._retry_at = 0.0  # timer() before which a failed write is not retried
        self._task: asyncio.Task[None] | None = None
        self._soon: set[asyncio.Task[None]] = set()

    # --- noting --------------------------------------------------------------------------
    def add_call(self, rec: CallRecord) -> None:
        self.calls.append(rec)

    def add_usage(self, account: str, figures: UsageFigures) -> None:
        self.usage[account] = figures

    def add_pause(self, scope: str, until: datetime, reason: str) -> None:
        """A pause is written at once (other daemons learn of it from the database)."""
        self.pauses.append((scope, until, reason))
        try:
            task = asyncio.get_running_loop().create_task(self.flush())
        except RuntimeError:  # no loop (a synchronous caller): the periodic flush writes it
            return
        self._soon.add(task)
        task.add_done_callback(self._soon.discard)

    def unwritten_calls(self) -> list[CallRecord]:
        """Calls made but not yet written to api_calls: those a flush is writing right now
        included (until its commit they are in neither place; the container budget counts
        them, telling a call that lands meanwhile from the table's by when it began)."""
        return [*self._writing, *self.calls]

    # --- the loop ------------------------------------------------------------------------
    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="igsched-call-log")

    async def stop(self) -> None:
        """Stop the loop and write what is left (one last try, whatever the backoff)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._soon:  # a pause being written right now: let it land before the last flush
            await asyncio.gather(*self._soon, return_exceptions=True)
        await self.flush(force=True)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            await self.flush()

    async def flush(self, force: bool = False) -> None:
        if not (self.calls or self.pauses or self.usage):
            return
        if not force and self._timer() < self._retry_at:
            return
        usage, self.usage = self._changed_usage(self.usage), {}
        if not (self.calls or self.pauses or usage):
            return  # only figures already written
        calls, self.calls = self.calls, []
        self._writing = [*self._writing, *calls]
        pauses, self.pauses = self.pauses, []
        account_pauses = [(s, until, r) for s, until, r in pauses if s != APP]
        app_pauses = [(until, r) for s, until, r in pauses if s == APP]
        try:
            await self.store.call(self.store.record_activity, calls, usage, account_pauses, app_pauses)
        except Exception as e:
            self._done_writing(calls)
            self.calls[:0] = calls
            self.pauses[:0] = pauses
            self.usage = {**usage, **self.usage}
            self._failed(e, len(calls))
            return
        self._done_writing(calls)
        written_at = self._timer()
        self._usage_written.update({account: (figures, written_at) for account, figures in usage.items()})
        if self.failures:
            log.info("call log written again after %d failed tries", self.failures)
        self.failures = 0
        self._seen_kinds.clear()
        self._retry_at = 0.0

    def _changed_usage(self, usage: dict[str, UsageFigures]) -> dict[str, UsageFigures]:
        """The figures worth a write: new, changed, or last written USAGE_REWRITE_S ago."""
        now = self._timer()
        out = {}
        for account, figures in usage.items():
            last = self._usage_written.get(account)
            if last is None or last[0] != figures or now - last[1] >= USAGE_REWRITE_S:
                out[account] = figures
        return out

    def _done_writing(self, calls: list[CallRecord]) -> None:
        written = {id(c) for c in calls}
        self._writing = [c for c in self._writing if id(c) not in written]

    def _failed(self, e: Exception, rows: int) -> None:
        self.failures += 1
        delay = min(MAX_BACKOFF_S, FIRST_BACKOFF_S * 2 ** (self.failures - 1))
        self._retry_at = self._timer() + delay
        kind = failure_kind(e)
        if kind in self._seen_kinds:
            return
        self._seen_kinds.add(kind)
        log.error("could not write %d API call row(s) (%s); keeping them, trying again with "
                  "backoff (next in %.1f s)", rows, kind, delay)
