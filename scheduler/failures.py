"""Repeated failures of a background loop, in as few log lines as will do.

A loop that fails every tick (a full disk, a database that went read-only or away) must not
print a traceback every tick: the first failure of a kind is one line — the exception's type
and first line, never an SQL statement or its parameters — then that kind is quiet until the
loop succeeds again, which is also said once. While it keeps failing, the loop waits longer
between tries (`delay`). Tracebacks only at DEBUG level.
"""

from __future__ import annotations

import logging

MAX_BACKOFF_S = 60.0


def failure_kind(e: BaseException) -> str:
    """A short, SQL-free description: SQLAlchemy's message quotes the statement and its
    parameters (post captions, error texts), the driver's first line does not."""
    orig = getattr(e, "orig", None) or e
    first = (str(orig).strip().splitlines() or [""])[0][:200]
    return f"{type(orig).__name__}: {first}" if first else type(orig).__name__


class Failures:
    """What one loop (`what`, e.g. "claiming due posts") has failed at since it last worked."""

    def __init__(self, log: logging.Logger, what: str) -> None:
        self.log = log
        self.what = what
        self.count = 0  # failures in a row
        self._seen: set[str] = set()

    def failed(self, e: BaseException) -> None:
        self.count += 1
        kind = failure_kind(e)
        if kind not in self._seen:
            self._seen.add(kind)
            self.log.warning("%s failed: %s; trying again (said once until it works)", self.what, kind)
        self.log.debug("%s failed", self.what, exc_info=e)

    def ok(self) -> None:
        if self.count:
            self.log.warning("%s works again after %d failure(s)", self.what, self.count)
        self.count = 0
        self._seen.clear()

    def delay(self, normal_s: float) -> float:
        """How long the loop waits before its next try: doubling while it fails."""
        if not self.count:
            return normal_s
        return min(MAX_BACKOFF_S, max(normal_s, normal_s * 2 ** (self.count - 1)))
