"""The Graph client's aiohttp transport over real sockets: bodies, query strings, compression,
streamed uploads, and — what exactly-once rests on — which failures count as "nothing was
sent" (connect errors) and which as "it may have taken effect" (everything after sending)."""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest
from aiohttp import web

from scheduler.graph.client import _CONNECT_ERRORS
from scheduler.graph.transport import AiohttpTransport

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def _serve(handler: Handler) -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"


def _client(timeout: float = 5.0) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=AiohttpTransport(8), timeout=httpx.Timeout(timeout, connect=2.0))


def test_request_and_answer_pass_through_unchanged() -> None:
    seen: dict[str, object] = {}

    async def handler(request: web.Request) -> web.StreamResponse:
        seen.update(method=request.method, query=request.raw_path.partition("?")[2], auth=request.headers.get("Authorization"),
                    body=(await request.read()).decode())
        body = gzip.compress(json.dumps({"id": "17890", "ok": True}).encode())
        return web.Response(body=body, headers={"Content-Encoding": "gzip", "Content-Type": "application/json",
                                                "X-App-Usage": '{"call_count":5}'})

    async def main() -> None:
        runner, base = await _serve(handler)
        try:
            async with _client() as c:
                r = await c.post(f"{base}/v23.0/1789/media", params={"fields": "id,permalink", "q": "a b&c"},
                                 data={"caption": "héllo #tag"}, headers={"Authorization": "Bearer T"})
        finally:
            await runner.cleanup()
        assert r.status_code == 200 and r.json() == {"id": "17890", "ok": True}
        assert r.headers["x-app-usage"] == '{"call_count":5}'
        assert seen["method"] == "POST" and seen["auth"] == "Bearer T"
        assert seen["query"] == "fields=id%2Cpermalink&q=a+b%26c"  # as httpx encoded it, not re-encoded
        assert seen["body"] == "caption=h%C3%A9llo+%23tag"

    asyncio.run(main())


def test_a_streamed_upload_arrives_whole() -> None:
    got: list[bytes] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        got.append(await request.read())
        return web.json_response({"success": True})

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(5):
            yield bytes([i]) * 100_000

    async def main() -> None:
        runner, base = await _serve(handler)
        try:
            async with _client() as c:
                r = await c.post(f"{base}/upload", content=chunks(), headers={"offset": "0"})
        finally:
            await runner.cleanup()
        assert r.json() == {"success": True}
        assert got == [b"".join(bytes([i]) * 100_000 for i in range(5))]

    asyncio.run(main())


def test_no_server_is_a_connect_error_nothing_was_sent() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    async def main() -> None:
        async with _client() as c:
            with pytest.raises(httpx.ConnectError) as e:
                await c.post(f"http://127.0.0.1:{port}/x", data={"a": "1"})
        assert isinstance(e.value, _CONNECT_ERRORS)

    asyncio.run(main())


def test_a_connection_dropped_after_sending_is_not_a_connect_error() -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        await request.read()
        assert request.transport is not None
        request.transport.close()  # the request arrived; the answer never will
        await asyncio.sleep(0.1)
        return web.Response()

    async def main() -> None:
        runner, base = await _serve(handler)
        try:
            async with _client() as c:
                with pytest.raises(httpx.TransportError) as e:
                    await c.post(f"{base}/media_publish", data={"creation_id": "1"})
        finally:
            await runner.cleanup()
        assert not isinstance(e.value, _CONNECT_ERRORS)  # may have taken effect: ambiguous

    asyncio.run(main())


def test_a_read_timeout_is_a_read_timeout() -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(1.0)
        return web.Response()

    async def main() -> None:
        runner, base = await _serve(handler)
        try:
            async with _client(timeout=0.2) as c:
                with pytest.raises(httpx.ReadTimeout):
                    await c.post(f"{base}/media_publish", data={"creation_id": "1"})
        finally:
            await runner.cleanup()

    asyncio.run(main())


def test_the_graph_client_verifies_certificates_with_the_one_shared_context() -> None:
    """Building a context reads the CA bundle (scheduler/tls.py): one per process, and it still
    verifies the server's certificate and name as httpx's own would."""
    from scheduler.graph.client import GraphClient
    from scheduler.tls import tls_context

    async def main() -> None:
        client = GraphClient("https://graph.instagram.com", "v23.0", 5.0, max_connections=100)
        transport = client._http._transport
        assert isinstance(transport, AiohttpTransport)
        session = transport._get_session()
        assert session.connector is not None and session.connector._ssl is tls_context()  # type: ignore[attr-defined]
        await client.aclose()

    asyncio.run(main())
    ctx = tls_context()
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
