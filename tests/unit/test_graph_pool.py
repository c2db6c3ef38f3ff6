"""The sharded connection pool: sizes, routing to the least busy pool, the cap on the total."""

from __future__ import annotations

import asyncio
import ssl

import httpx
import pytest

from scheduler.graph.client import GraphClient
from scheduler.graph.pool import SHARD_CONNECTIONS, ShardedClient, shard_sizes
from scheduler.tls import tls_context


@pytest.mark.parametrize(("total", "expected"), [
    (1, [1]), (16, [16]), (17, [9, 8]), (64, [16, 16, 16, 16]), (100, [15, 15, 14, 14, 14, 14, 14]),
])
def test_shard_sizes_split_evenly_under_the_cap(total: int, expected: list[int]) -> None:
    sizes = shard_sizes(total)
    assert sizes == expected
    assert sum(sizes) == total and max(sizes) <= SHARD_CONNECTIONS


def test_requests_go_to_the_least_busy_pool_and_never_exceed_the_total() -> None:
    in_flight: list[int] = []
    peak = {"all": 0}
    release = asyncio.Event()

    async def handler(request: httpx.Request) -> httpx.Response:
        in_flight.append(1)
        peak["all"] = max(peak["all"], len(in_flight))
        await release.wait()
        in_flight.pop()
        return httpx.Response(200, json={"ok": True})

    made: list[httpx.Limits] = []

    def make(limits: httpx.Limits) -> httpx.AsyncClient:
        made.append(limits)
        return httpx.AsyncClient(transport=httpx.MockTransport(handler))

    async def main() -> None:
        pool = ShardedClient(40, make)  # 3 pools: 14, 13, 13
        assert pool.shards == 3 and [m.max_connections for m in made] == [14, 13, 13]
        tasks = [asyncio.create_task(pool.request("GET", "http://x/")) for _ in range(30)]
        await asyncio.sleep(0.05)
        # spread evenly: each pool took 10 of the 30 (ties go to the first)
        assert sorted(pool._busy) == [10, 10, 10]
        release.set()
        answers = await asyncio.gather(*tasks)
        assert all(a.status_code == 200 for a in answers) and pool._busy == [0, 0, 0]
        await pool.aclose()

    asyncio.run(main())
    assert peak["all"] == 30


def test_every_pool_verifies_certificates_with_the_one_shared_context() -> None:
    """Building a context reads the CA bundle (scheduler/tls.py): one per process, and it still
    verifies the server's certificate and name as httpx's own would."""
    client = GraphClient("https://graph.instagram.com", "v23.0", 5.0, max_connections=100)
    contexts = {id(c._transport._pool._ssl_context) for c in client._http._clients}  # type: ignore[attr-defined]
    assert client._http.shards == 7 and contexts == {id(tls_context())}
    ctx = tls_context()
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    asyncio.run(client.aclose())
