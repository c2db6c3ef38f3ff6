"""Permalinks read in bulk: one page of an account's media (`id,permalink`) serves every post
published in a burst, so each post's follow-up does not read its own.

Held by the runtime: per account, one bulk read at a time, and the permalinks it found (a post
whose follow-up was claimed before the read finished finds its permalink here, without a call).
"""

from __future__ import annotations

import asyncio

MAX_KEPT = 10_000  # permalinks remembered per daemon (forgotten all at once beyond that)


class Permalinks:
    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        self._found: dict[str, str] = {}  # media id → permalink

    def lock(self, account: str) -> asyncio.Lock:
        return self._locks.setdefault(account, asyncio.Lock())

    def get(self, media_id: str) -> str | None:
        return self._found.get(media_id)

    def add(self, found: dict[str, str]) -> None:
        if len(self._found) + len(found) > MAX_KEPT:
            self._found.clear()
        self._found.update(found)
