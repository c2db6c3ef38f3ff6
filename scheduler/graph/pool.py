"""Several small httpx connection pools behind one `request`, each call on the least busy.

Why: httpcore's pool checks every pooled connection's socket (a `poll` and a `getpeername`)
each time it hands out or takes back a connection, so its cost per request grows with the
pool's size. One pool of 64 connections spent most of its CPU there: 1,000 `media_publish`
calls to the fake Graph API at 50 ms latency took 8.7 s with one pool of 64 connections and
1.0 s with four pools of 16 (bench/, README "Development"; encode/httpcore PR #928 describes
the same). Pools of at most `SHARD_CONNECTIONS` keep that cost flat whatever `workers` is.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import httpx

SHARD_CONNECTIONS = 16


def shard_sizes(max_connections: int, per_shard: int = SHARD_CONNECTIONS) -> list[int]:
    """Split `max_connections` into pools of at most `per_shard`, as even as possible."""
    total = max(1, max_connections)
    shards = math.ceil(total / per_shard)
    base, extra = divmod(total, shards)
    return [base + (1 if i < extra else 0) for i in range(shards)]


class ShardedClient:
    """httpx.AsyncClient's `request` over several pools. A request goes to the pool with the
    fewest requests in flight (the first on a tie), so a pool has a free connection whenever
    the pools together do, and the total never exceeds `max_connections`."""

    def __init__(self, max_connections: int, make: Callable[[httpx.Limits], httpx.AsyncClient],
                 per_shard: int = SHARD_CONNECTIONS) -> None:
        self._clients = [make(httpx.Limits(max_connections=n, max_keepalive_connections=n))
                         for n in shard_sizes(max_connections, per_shard)]
        self._busy = [0] * len(self._clients)

    @property
    def shards(self) -> int:
        return len(self._clients)

    async def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        i = min(range(len(self._busy)), key=self._busy.__getitem__)
        self._busy[i] += 1
        try:
            return await self._clients[i].request(method, url, **kwargs)
        finally:
            self._busy[i] -= 1

    async def aclose(self) -> None:
        for client in self._clients:
            await client.aclose()
