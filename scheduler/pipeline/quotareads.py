"""What this daemon remembers between publishes to read the publishing quota sparingly: one
read at a time per account, and how much room the account's rolling window had at its last
publish (igsched's own count, from the database's reservation)."""

from __future__ import annotations

import asyncio
import math
from datetime import datetime

NEAR_FULL_FRACTION = 0.1  # "nearly full": at most this share of the quota left (and at least 2)


def near_full(used: int, total: int) -> bool:
    return total - used <= max(2, math.ceil(total * NEAR_FULL_FRACTION))


class QuotaReads:
    """In memory only (a restart reads the database once per account): saves a database read
    per publish when nothing calls for a quota read."""

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        self._near_full: dict[str, bool] = {}
        self._checked_at: dict[str, datetime] = {}  # the newest read this daemon knows of

    def checked(self, account: str, at: datetime) -> None:
        if account not in self._checked_at or at > self._checked_at[account]:
            self._checked_at[account] = at

    def checked_at(self, account: str) -> datetime | None:
        return self._checked_at.get(account)

    def lock(self, account: str) -> asyncio.Lock:
        return self._locks.setdefault(account, asyncio.Lock())

    def note(self, account: str, used: int, total: int) -> None:
        """The count a publish reservation saw (used after it, out of total)."""
        self._near_full[account] = near_full(used, total)

    def is_near_full(self, account: str) -> bool:
        return self._near_full.get(account, False)
