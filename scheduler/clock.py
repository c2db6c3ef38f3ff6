"""One notion of time: naive UTC datetimes in the database, aware ones at the edges, and an
injectable clock.

The daemon, the pipeline and the store read the time from a `Clock`. Production uses
`SYSTEM_CLOCK`; tests hand a `FakeClock` to the Store and the daemon and move it forward (and
the fake Graph API's clock with it, `EmulatorState.advance`), so a 24-hour container expiry or
a week-ahead post is tested end to end in seconds. Due-ness on PostgreSQL follows the
database's clock with the system clock (README "Limits, retries and crash safety"), and the
injected clock when one is given.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol


def utcnow() -> datetime:
    """Naive UTC now, the form every timestamp column holds."""
    return datetime.now(UTC).replace(tzinfo=None)


class Clock(Protocol):
    def now(self) -> datetime:
        """Naive UTC."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return utcnow()


SYSTEM_CLOCK = SystemClock()


class FakeClock:
    """A clock that moves only when told to (`advance`), or runs from an offset (`shift`)."""

    def __init__(self, start: datetime | None = None, *, running: bool = False) -> None:
        self._offset = timedelta(0)
        self._fixed: datetime | None = None if running else (start or utcnow())
        if running and start is not None:
            self._offset = start - utcnow()

    def now(self) -> datetime:
        if self._fixed is not None:
            return self._fixed
        return utcnow() + self._offset

    def advance(self, seconds: float) -> datetime:
        if self._fixed is not None:
            self._fixed += timedelta(seconds=seconds)
        else:
            self._offset += timedelta(seconds=seconds)
        return self.now()


def to_naive_utc(dt: datetime) -> datetime:
    return dt.astimezone(UTC).replace(tzinfo=None) if dt.tzinfo else dt


def to_aware(dt: datetime) -> datetime:
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def iso(dt: datetime | None) -> str | None:
    """ISO 8601 with an explicit +00:00 offset, for JSON output."""
    return to_aware(dt).isoformat() if dt is not None else None
