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


PATHS = ["httpx", "direct"]  # httpx's interface on the transport, and the Graph client's own path


async def _post(path: str, url: str, data: dict[str, str], timeout: float = 5.0) -> None:
    """A form POST over one of the two paths; failures raise httpx's exceptions on both."""
    if path == "httpx":
        async with _client(timeout) as c:
            await c.post(url, data=data)
        return
    transport = AiohttpTransport(8)
    try:
        await transport.exchange("POST", url, params=None, data=data, json_body=None, headers={},
                                 timeout=httpx.Timeout(timeout, connect=2.0))
    finally:
        await transport.aclose()


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


@pytest.mark.parametrize("path", PATHS)
def test_no_server_is_a_connect_error_nothing_was_sent(path: str) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    async def main() -> None:
        with pytest.raises(httpx.ConnectError) as e:
            await _post(path, f"http://127.0.0.1:{port}/x", {"a": "1"})
        assert isinstance(e.value, _CONNECT_ERRORS)

    asyncio.run(main())


@pytest.mark.parametrize("path", PATHS)
def test_a_connection_dropped_after_sending_is_not_a_connect_error(path: str) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        await request.read()
        assert request.transport is not None
        request.transport.close()  # the request arrived; the answer never will
        await asyncio.sleep(0.1)
        return web.Response()

    async def main() -> None:
        runner, base = await _serve(handler)
        try:
            with pytest.raises(httpx.TransportError) as e:
                await _post(path, f"{base}/media_publish", {"creation_id": "1"})
        finally:
            await runner.cleanup()
        assert not isinstance(e.value, _CONNECT_ERRORS)  # may have taken effect: ambiguous

    asyncio.run(main())


@pytest.mark.parametrize("path", PATHS)
def test_a_read_timeout_is_a_read_timeout(path: str) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(1.0)
        return web.Response()

    async def main() -> None:
        runner, base = await _serve(handler)
        try:
            with pytest.raises(httpx.ReadTimeout):
                await _post(path, f"{base}/media_publish", {"creation_id": "1"}, timeout=0.2)
        finally:
            await runner.cleanup()

    asyncio.run(main())


def test_the_graph_clients_own_path_encodes_exactly_as_httpx() -> None:
    """The same call through GraphClient's own path and through httpx (an injected transport):
    the same query string, body, content type and headers arrive, for forms and for JSON."""
    from scheduler.graph.client import GraphClient

    seen: list[dict[str, object]] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        seen.append({"method": request.method, "path": request.raw_path, "body": await request.read(),
                     "type": request.headers.get("Content-Type"), "ua": request.headers.get("User-Agent"),
                     "auth": request.headers.get("Authorization")})
        return web.json_response({"id": "1"}, headers={"X-App-Usage": '{"call_volume":7,"cpu_time":2}'})

    params = {"fields": "id,permalink", "q": "a b&c/é", "flag": True, "off": False, "ids": ["1", "2"], "n": 3}
    form = {"caption": "héllo #tag\nline", "share_to_feed": True, "children": ["1", "2"]}
    body = {"recipient": {"id": "9"}, "message": {"text": "héllo", "quick_replies": [{"title": "Oui"}]}}

    async def main() -> None:
        runner, base = await _serve(handler)
        try:
            for transport in (None, AiohttpTransport(4)):
                async with GraphClient(base, "v23.0", 5.0, transport=transport) as client:
                    assert (client._direct is not None) is (transport is None)  # the path taken
                    _, usage = await client.request("GET", "1789/media", "T0K", params=params)
                    assert usage.app is not None and usage.app.call_count == 7
                    await client.request("POST", "1789/media", "T0K", params=params, data=form)
                    await client.request("POST", "1789/messages", "T0K", json_body=body)
        finally:
            await runner.cleanup()

    asyncio.run(main())
    direct, through_httpx = seen[:3], seen[3:]
    assert direct == through_httpx
    assert direct[0]["path"] == "/v23.0/1789/media?fields=id%2Cpermalink&q=a+b%26c%2F%C3%A9&flag=true&off=false&ids=1&ids=2&n=3"
    assert direct[1]["type"] == "application/x-www-form-urlencoded"
    assert direct[2]["type"] == "application/json" and json.loads(direct[2]["body"]) == body  # type: ignore[arg-type]
    assert direct[0]["auth"] == "Bearer T0K" and str(direct[0]["ua"]).startswith("igsched/")


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
