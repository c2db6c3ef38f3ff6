"""GraphClient over real HTTP, against a small aiohttp server in a background thread.

The server answers canned Graph-shaped responses per (method, path); tests install routes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs

import httpx
import pytest
from aiohttp import web

from scheduler.graph import (
    CallRecord,
    ErrorClass,
    GraphClient,
    GraphError,
    GraphUnavailable,
    UploadError,
    call_context,
)
from scheduler.graph.transport import AiohttpTransport

TOKEN = "IGAAJtestTOKENvalue0123456789abcdefXYZ"
IG = "17841400000000001"
VERSION = "v23.0"
USAGE_HEADERS = {
    "X-App-Usage": '{"call_count":12,"total_time":4,"total_cputime":3}',
    "X-Business-Use-Case-Usage": json.dumps(
        {
            IG: [
                {
                    "type": "instagram",
                    "call_count": 30,
                    "total_cputime": 2,
                    "total_time": 5,
                    "estimated_time_to_regain_access": 0,
                }
            ]
        }
    ),
}

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


# --- the test server -----------------------------------------------------------------------


@dataclass
class Seen:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes

    @property
    def form(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(self.body.decode()).items()}


Handler = Callable[[web.Request, Seen], Awaitable[web.StreamResponse] | web.StreamResponse]


def graph_json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        text=json.dumps(data),
        status=status,
        content_type="application/json",
        headers=USAGE_HEADERS if headers is None else headers,
    )


def graph_error(
    code: int,
    subcode: int | None = None,
    status: int = 400,
    message: str = "An error occurred",
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> web.Response:
    error: dict[str, Any] = {
        "message": message,
        "type": "OAuthException",
        "code": code,
        "fbtrace_id": "AfbTrace123",
        **extra,
    }
    if subcode is not None:
        error["error_subcode"] = subcode
    return graph_json({"error": error}, status=status, headers=headers)


class FakeGraph:
    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], Handler] = {}
        self.requests: list[Seen] = []
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def route(self, method: str, path: str, handler: Handler) -> None:
        self.routes[(method, path)] = handler

    def canned(self, method: str, path: str, response: Callable[[], web.StreamResponse]) -> None:
        self.routes[(method, path)] = lambda _req, _seen: response()

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        seen = Seen(request.method, request.path, request.query_string, dict(request.headers), body)
        self.requests.append(seen)
        handler = self.routes.get((request.method, request.path))
        if handler is None:
            return graph_error(100, 33, message=f"no route {request.method} {request.path}")
        result = handler(request, seen)
        if asyncio.iscoroutine(result) or isinstance(result, Awaitable):
            result = await result
        return result

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app, access_log=None)
        self.loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        self.loop.run_until_complete(site.start())
        self.port = self._runner.addresses[0][1]
        self._ready.set()
        self.loop.run_forever()
        self.loop.run_until_complete(self._runner.cleanup())
        self.loop.close()

    def start(self) -> FakeGraph:
        self._thread.start()
        self._ready.wait(10)
        return self

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)


@pytest.fixture(scope="module")
def server() -> Iterator[FakeGraph]:
    fake = FakeGraph().start()
    yield fake
    fake.stop()


@pytest.fixture
def fake(server: FakeGraph) -> FakeGraph:
    server.routes.clear()
    server.requests.clear()
    return server


class Recorder:
    def __init__(self) -> None:
        self.records: list[CallRecord] = []

    def __call__(self, record: CallRecord) -> None:
        self.records.append(record)


def client_for(fake: FakeGraph, rec: Recorder, timeout_s: float = 5.0, **kw: Any) -> GraphClient:
    return GraphClient(fake.base_url, VERSION, timeout_s, on_call=rec, **kw)


def assert_no_token_leak(fake: FakeGraph, rec: Recorder, *texts: str) -> None:
    for seen in fake.requests:
        assert TOKEN not in seen.path and TOKEN not in seen.query
        assert "access_token" not in seen.query
    for record in rec.records:
        assert TOKEN not in repr(record)
    for text in texts:
        assert TOKEN not in text


# --- happy path ----------------------------------------------------------------------------


def test_create_poll_publish(fake: FakeGraph) -> None:
    fake.canned("POST", f"/{VERSION}/{IG}/media", lambda: graph_json({"id": "9001"}))
    fake.canned(
        "GET",
        f"/{VERSION}/9001",
        lambda: graph_json({"id": "9001", "status_code": "FINISHED", "status": "Finished: 100%"}),
    )
    fake.canned("POST", f"/{VERSION}/{IG}/media_publish", lambda: graph_json({"id": "555"}))
    rec = Recorder()

    async def main() -> tuple[str, Any, str]:
        async with client_for(fake, rec) as client:
            with call_context(account="shop", post_id=3):
                cid = await client.create_container(
                    IG, TOKEN, {"image_url": "https://cdn.example.com/a.jpg", "caption": "Hi #x"}
                )
                status = await client.container_status(cid, TOKEN)
                media_id = await client.publish(IG, TOKEN, cid)
        return cid, status, media_id

    cid, status, media_id = run(main())
    assert cid == "9001" and media_id == "555"
    assert (status.id, status.status_code, status.status) == ("9001", "FINISHED", "Finished: 100%")

    create, poll, publish = fake.requests
    for seen in fake.requests:
        assert seen.headers["Authorization"] == f"Bearer {TOKEN}"
    # parameters travel in the form body, not the URL
    assert create.form == {"image_url": "https://cdn.example.com/a.jpg", "caption": "Hi #x"}
    assert create.query == ""
    assert parse_qs(poll.query) == {"fields": ["id,status_code,status"]}
    assert publish.form == {"creation_id": "9001"}

    assert [r.endpoint for r in rec.records] == [
        "POST /{ig-user-id}/media",
        "GET /{container-id}",
        "POST /{ig-user-id}/media_publish",
    ]
    assert [r.path for r in rec.records] == [
        f"/{VERSION}/{IG}/media",
        f"/{VERSION}/9001",
        f"/{VERSION}/{IG}/media_publish",
    ]
    for r in rec.records:
        assert (r.outcome, r.http_status, r.account, r.post_id) == ("ok", 200, "shop", 3)
        assert r.error_code is None and r.error_class is None
        assert r.started_at.tzinfo is UTC
        assert r.duration_ms >= 0
        assert r.usage.app is not None and r.usage.app.call_count == 12
        assert r.usage.max_pct(IG) == 30
    assert_no_token_leak(fake, rec)


def test_reads(fake: FakeGraph) -> None:
    fake.canned("GET", f"/{VERSION}/me", lambda: graph_json({"id": IG, "username": "shop"}))
    fake.canned("GET", f"/{VERSION}/{IG}", lambda: graph_json({"id": IG, "username": "shop"}))
    fake.canned(
        "GET",
        f"/{VERSION}/555",
        lambda: graph_json({"id": "555", "permalink": "https://instagram.com/p/x"}),
    )
    fake.canned(
        "GET",
        f"/{VERSION}/{IG}/media",
        lambda: graph_json({"data": [{"id": "555"}, {"id": "554"}], "paging": {"next": "x"}}),
    )
    fake.canned(
        "GET",
        f"/{VERSION}/{IG}/content_publishing_limit",
        lambda: graph_json(
            {"data": [{"quota_usage": 2, "config": {"quota_total": 50, "quota_duration": 86400}}]}
        ),
    )
    fake.canned("POST", f"/{VERSION}/555/comments", lambda: graph_json({"id": "c-1"}))
    rec = Recorder()

    async def main() -> list[Any]:
        async with client_for(fake, rec) as client:
            return [
                await client.me(TOKEN),
                await client.user(IG, TOKEN),
                await client.media_info("555", TOKEN),
                await client.recent_media(IG, TOKEN, limit=10),
                await client.publishing_limit(IG, TOKEN, since=1700000000),
                await client.post_comment("555", TOKEN, "More at the link in bio"),
            ]

    me, user, info, recent, limit, comment_id = run(main())
    assert me == user == {"id": IG, "username": "shop"}
    assert info["permalink"] == "https://instagram.com/p/x"
    assert [m["id"] for m in recent] == ["555", "554"]
    assert (limit.quota_usage, limit.quota_total, limit.quota_duration) == (2, 50, 86400)
    assert comment_id == "c-1"
    queries = [parse_qs(s.query) for s in fake.requests]
    assert queries[0] == {"fields": ["id,username"]}
    assert queries[2]["fields"] == ["id,permalink,media_type,media_product_type,timestamp"]
    assert queries[3]["limit"] == ["10"]
    assert queries[4] == {"fields": ["quota_usage,config"], "since": ["1700000000"]}
    assert fake.requests[5].form == {"message": "More at the link in bio"}
    assert rec.records[0].endpoint == "GET /me"
    assert rec.records[4].endpoint == "GET /{ig-user-id}/content_publishing_limit"
    assert_no_token_leak(fake, rec)


def test_generic_request_default_endpoint_name(fake: FakeGraph) -> None:
    fake.canned("DELETE", f"/{VERSION}/178000111", lambda: graph_json(True))
    rec = Recorder()

    async def main() -> Any:
        async with client_for(fake, rec) as client:
            return await client.request("delete", "178000111", TOKEN)

    body, usage = run(main())
    assert body == {"success": True}
    assert usage.max_pct() == 30
    assert rec.records[0].endpoint == "DELETE /{id}"
    assert rec.records[0].method == "DELETE"


def test_ids_are_quoted_into_one_path_segment(fake: FakeGraph) -> None:
    rec = Recorder()

    async def main() -> None:
        async with client_for(fake, rec) as client:
            with pytest.raises(GraphError):
                await client.media_info("1/../me?x=1", TOKEN)

    run(main())
    assert fake.requests[0].path == f"/{VERSION}/1/../me?x=1"  # decoded by the server, one segment
    assert rec.records[0].path == f"/{VERSION}/1%2F..%2Fme%3Fx%3D1"


# --- Graph errors --------------------------------------------------------------------------


def test_throttle_error_carries_usage_and_is_recorded(fake: FakeGraph) -> None:
    headers = {
        "X-Business-Use-Case-Usage": json.dumps(
            {
                IG: [
                    {
                        "type": "instagram",
                        "call_count": 100,
                        "total_cputime": 20,
                        "total_time": 30,
                        "estimated_time_to_regain_access": 5,
                    }
                ]
            }
        )
    }
    fake.canned(
        "GET",
        f"/{VERSION}/{IG}/content_publishing_limit",
        lambda: graph_error(80002, message="Too many calls", headers=headers, is_transient=True),
    )
    rec = Recorder()

    async def main() -> GraphError:
        async with client_for(fake, rec) as client:
            with call_context(account="shop"), pytest.raises(GraphError) as info:
                await client.publishing_limit(IG, TOKEN)
            return info.value

    err = run(main())
    assert type(err) is GraphError
    assert err.error_class is ErrorClass.THROTTLED
    assert (err.code, err.http_status, err.fbtrace_id) == (80002, 400, "AfbTrace123")
    assert err.usage is not None and err.usage.regain_seconds(IG) == 300.0
    record = rec.records[0]
    assert (record.outcome, record.error_code, record.error_subcode) == ("error", 80002, None)
    assert record.fbtrace_id == "AfbTrace123"
    assert record.error_class is ErrorClass.THROTTLED
    assert record.error_message is not None and "Too many calls" in record.error_message
    assert record.usage.buc[IG].regain_minutes == 5
    assert record.account == "shop" and record.post_id is None


@pytest.mark.parametrize(
    ("code", "subcode", "status", "expected"),
    [
        (9007, 2207027, 400, ErrorClass.NOT_READY),
        (9, 2207042, 403, ErrorClass.QUOTA),
        (4, 2207051, 400, ErrorClass.SPAM),
        (190, 463, 400, ErrorClass.AUTH),
        (1, None, 500, ErrorClass.TRANSIENT),  # HTTP 500 with a Graph body: by code
        (-1, 2207032, 500, ErrorClass.RECREATE),
        (36003, 2207009, 400, ErrorClass.PERMANENT),
    ],
)
def test_graph_error_bodies_are_classified(
    fake: FakeGraph, code: int, subcode: int | None, status: int, expected: ErrorClass
) -> None:
    fake.canned(
        "POST",
        f"/{VERSION}/{IG}/media_publish",
        lambda: graph_error(code, subcode, status=status, message="Meta says no"),
    )
    rec = Recorder()

    async def main() -> GraphError:
        async with client_for(fake, rec) as client:
            with pytest.raises(GraphError) as info:
                await client.publish(IG, TOKEN, "9001")
            return info.value

    err = run(main())
    assert not isinstance(err, GraphUnavailable)
    assert err.error_class is expected
    assert err.http_status == status
    assert str(err).startswith(f"Graph error {code}")
    assert str(err).endswith("Meta says no [fbtrace_id AfbTrace123]")
    assert rec.records[0].error_subcode == subcode


def test_token_echoed_by_the_server_is_redacted(fake: FakeGraph) -> None:
    fake.canned(
        "GET",
        f"/{VERSION}/me",
        lambda: graph_error(
            190, 460, message=f"Bad token {TOKEN}", error_user_msg=f"Log in again ({TOKEN})"
        ),
    )
    rec = Recorder()

    async def main() -> GraphError:
        async with client_for(fake, rec) as client:
            with pytest.raises(GraphError) as info:
                await client.me(TOKEN)
            return info.value

    err = run(main())
    assert err.error_class is ErrorClass.AUTH
    assert "[redacted]" in err.message
    assert_no_token_leak(fake, rec, str(err), repr(err), err.user_msg or "", str(err.args))


# --- answers that are not Graph answers ----------------------------------------------------


@pytest.mark.parametrize(
    ("response", "exc_type", "kind", "expected"),
    [
        (
            lambda: web.Response(text="<html>Bad Gateway</html>", status=502),
            GraphUnavailable,
            "http_5xx",
            ErrorClass.AMBIGUOUS,
        ),
        (
            lambda: web.Response(text="{}", status=500, content_type="application/json"),
            GraphUnavailable,
            "http_5xx",
            ErrorClass.AMBIGUOUS,
        ),
        (
            lambda: web.Response(text="<html>ok?</html>", status=200),
            GraphUnavailable,
            "bad_answer",
            ErrorClass.AMBIGUOUS,
        ),
        (
            lambda: graph_json({"no_id": True}),
            GraphUnavailable,
            "bad_answer",
            ErrorClass.AMBIGUOUS,
        ),
        (
            lambda: web.Response(text="not found", status=404),
            GraphError,
            None,
            ErrorClass.PERMANENT,
        ),
        (
            lambda: web.Response(text="slow down", status=429),
            GraphError,
            None,
            ErrorClass.THROTTLED,
        ),
    ],
)
def test_unreadable_answers(
    fake: FakeGraph,
    response: Callable[[], web.Response],
    exc_type: type[GraphError],
    kind: str | None,
    expected: ErrorClass,
) -> None:
    fake.canned("POST", f"/{VERSION}/{IG}/media", response)
    rec = Recorder()

    async def main() -> GraphError:
        async with client_for(fake, rec) as client:
            with pytest.raises(GraphError) as info:
                await client.create_container(IG, TOKEN, {"image_url": "https://x/a.jpg"})
            return info.value

    err = run(main())
    assert type(err) is exc_type
    assert err.error_class is expected
    if kind is not None:
        assert isinstance(err, GraphUnavailable) and err.kind == kind
        assert rec.records[0].outcome == kind
    else:
        assert rec.records[0].outcome == "error"
    assert rec.records[0].http_status == err.http_status is not None
    assert_no_token_leak(fake, rec, str(err))


# --- transport failures --------------------------------------------------------------------


def test_slow_answer_is_an_ambiguous_timeout(fake: FakeGraph) -> None:
    async def slow(_req: web.Request, _seen: Seen) -> web.Response:
        await asyncio.sleep(2.0)
        return graph_json({"id": "1"})

    fake.route("POST", f"/{VERSION}/{IG}/media_publish", slow)
    rec = Recorder()

    async def main() -> GraphUnavailable:
        async with client_for(fake, rec, timeout_s=0.3) as client:
            with pytest.raises(GraphUnavailable) as info:
                await client.publish(IG, TOKEN, "9001")
            return info.value

    err = run(main())
    assert (err.kind, err.error_class) == ("timeout", ErrorClass.AMBIGUOUS)
    record = rec.records[0]
    assert (record.outcome, record.http_status) == ("timeout", None)
    assert 250 <= record.duration_ms < 2000
    assert record.usage.is_empty
    assert_no_token_leak(fake, rec, str(err), repr(err))


def test_dropped_connection_is_ambiguous(fake: FakeGraph) -> None:
    async def drop(request: web.Request, _seen: Seen) -> web.StreamResponse:
        assert request.transport is not None
        request.transport.close()  # hang up without answering
        await asyncio.sleep(0.2)
        return web.Response(text="never sent")

    fake.route("POST", f"/{VERSION}/{IG}/media_publish", drop)
    rec = Recorder()

    async def main() -> GraphUnavailable:
        async with client_for(fake, rec) as client:
            with pytest.raises(GraphUnavailable) as info:
                await client.publish(IG, TOKEN, "9001")
            return info.value

    err = run(main())
    assert (err.kind, err.error_class) == ("connection", ErrorClass.AMBIGUOUS)
    assert rec.records[0].outcome == "connection"
    assert len(fake.requests) == 1  # the server did receive it: that is why it is ambiguous
    assert_no_token_leak(fake, rec, str(err))


def test_closed_port_is_transient() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    rec = Recorder()

    async def main() -> GraphUnavailable:
        async with GraphClient(f"http://127.0.0.1:{port}", VERSION, 2.0, on_call=rec) as client:
            with call_context(account="shop", post_id=7), pytest.raises(GraphUnavailable) as info:
                await client.publish(IG, TOKEN, "9001")
            return info.value

    err = run(main())
    assert (err.kind, err.error_class) == ("connect", ErrorClass.TRANSIENT)
    record = rec.records[0]
    assert (record.outcome, record.account, record.post_id) == ("connect", "shop", 7)
    assert TOKEN not in str(err) and TOKEN not in repr(record)


@pytest.mark.parametrize(
    ("exc", "kind", "expected"),
    [
        (httpx.ConnectError("refused"), "connect", ErrorClass.TRANSIENT),
        (httpx.ConnectTimeout("slow connect"), "connect", ErrorClass.TRANSIENT),
        (httpx.PoolTimeout("pool"), "connect", ErrorClass.TRANSIENT),
        (httpx.ReadTimeout("read"), "timeout", ErrorClass.AMBIGUOUS),
        (httpx.WriteTimeout("write"), "timeout", ErrorClass.AMBIGUOUS),
        (httpx.ReadError("reset"), "connection", ErrorClass.AMBIGUOUS),
        (httpx.WriteError("broken pipe"), "connection", ErrorClass.AMBIGUOUS),
        (httpx.RemoteProtocolError("Server disconnected"), "connection", ErrorClass.AMBIGUOUS),
    ],
)
def test_httpx_exception_mapping(exc: Exception, kind: str, expected: ErrorClass) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    rec = Recorder()

    async def main() -> GraphUnavailable:
        transport = httpx.MockTransport(handler)
        async with GraphClient("https://graph.test", VERSION, 1.0, rec, transport=transport) as c:
            with pytest.raises(GraphUnavailable) as info:
                await c.publish(IG, TOKEN, "1")
            return info.value

    err = run(main())
    assert (err.kind, err.error_class) == (kind, expected)
    assert rec.records[0].outcome == kind
    assert str(err).startswith(f"Graph API unavailable ({kind})")


def test_cancelled_call_is_recorded() -> None:
    started = asyncio.Event()

    async def handler(request: httpx.Request) -> httpx.Response:
        started.set()
        await asyncio.sleep(10)
        return httpx.Response(200, json={"id": "1"})

    rec = Recorder()

    async def main() -> None:
        transport = httpx.MockTransport(handler)
        async with GraphClient("https://graph.test", VERSION, 30.0, rec, transport=transport) as c:
            task = asyncio.create_task(c.publish(IG, TOKEN, "1"))
            await started.wait()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    run(main())
    assert [r.outcome for r in rec.records] == ["cancelled"]


# --- comments paging -----------------------------------------------------------------------


def _comments_route(fake: FakeGraph, pages: dict[str | None, dict[str, Any]]) -> None:
    def handler(request: web.Request, _seen: Seen) -> web.Response:
        return graph_json(pages[request.query.get("after")])

    fake.route("GET", f"/{VERSION}/555/comments", handler)


def _page(ids: list[int], after: str | None, nxt: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"data": [{"id": str(i), "text": f"c{i}"} for i in ids]}
    paging: dict[str, Any] = {"cursors": {"before": "b", "after": after or "end"}}
    if nxt:
        # Meta's next URL carries the token: the client must never follow it.
        paging["next"] = (
            f"https://graph.instagram.com/{VERSION}/555/comments?access_token={TOKEN}&after={after}"
        )
    body["paging"] = paging
    return body


def test_comments_follow_cursor_past_a_short_page(fake: FakeGraph) -> None:
    _comments_route(
        fake,
        {
            None: _page([1, 2, 3], "cur1", nxt=True),
            "cur1": _page([4], "cur2", nxt=True),  # short page, not the end
            "cur2": _page([5, 6], None, nxt=False),
        },
    )
    rec = Recorder()

    async def main() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        async with client_for(fake, rec) as client:
            everything = await client.comments("555", TOKEN, page_size=3)
            some = await client.comments("555", TOKEN, page_size=3, max_items=4)
            return everything, some

    everything, some = run(main())
    assert [c["id"] for c in everything] == ["1", "2", "3", "4", "5", "6"]
    assert [c["id"] for c in some] == ["1", "2", "3", "4"]
    queries = [parse_qs(s.query) for s in fake.requests]
    assert [q.get("after") for q in queries] == [None, ["cur1"], ["cur2"], None, ["cur1"]]
    assert all(q["limit"] == ["3"] for q in queries)
    assert queries[0]["fields"] == ["id,text,username,timestamp"]
    assert {r.endpoint for r in rec.records} == {"GET /{media-id}/comments"}
    assert_no_token_leak(fake, rec)


def test_comments_cursor_from_next_url_and_stuck_cursor(fake: FakeGraph) -> None:
    first = {"data": [{"id": "1"}], "paging": {"next": "https://x/555/comments?after=abc&limit=1"}}
    stuck = {"data": [{"id": "2"}], "paging": {"cursors": {"after": "abc"}, "next": "https://x/n"}}
    _comments_route(fake, {None: first, "abc": stuck})
    rec = Recorder()

    async def main() -> list[dict[str, Any]]:
        async with client_for(fake, rec) as client:
            return await client.comments("555", TOKEN, page_size=1)

    items = run(main())
    assert [c["id"] for c in items] == ["1", "2"]  # stopped instead of looping on "abc"
    assert len(fake.requests) == 2


def _media_route(fake: FakeGraph, pages: dict[str | None, dict[str, Any]], edge: str = "media") -> None:
    def handler(request: web.Request, _seen: Seen) -> web.Response:
        return graph_json(pages[request.query.get("after")])

    fake.route("GET", f"/{VERSION}/{IG}/{edge}", handler)


def _media_page(items: list[tuple[str, Any]], after: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {"data": [{"id": i, "timestamp": ts} for i, ts in items]}
    if after:
        body["paging"] = {
            "cursors": {"before": "b", "after": after},
            "next": f"https://graph.instagram.com/{VERSION}/{IG}/media?access_token={TOKEN}&after={after}",
        }
    return body


def test_media_back_to_stops_at_the_first_older_item(fake: FakeGraph) -> None:
    _media_route(
        fake,
        {
            None: _media_page([("9", "2026-11-30T09:05:00+0000"), ("8", "not a time"),
                               ("7", None)], "c1"),
            "c1": _media_page([("6", "2026-11-30T10:00:00+01:00"),  # 09:00 UTC: on the bound
                               ("5", "2026-11-30T08:59:59+0000"), ("4", "2026-11-30T09:30:00+0000")], "c2"),
            "c2": _media_page([("3", "2026-11-30T09:00:00+0000")], None),
        },
    )
    rec = Recorder()
    bound = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)

    async def main() -> tuple[list[str], list[str]]:
        async with client_for(fake, rec) as client:
            aware = [m["id"] async for m in client.media_back_to(IG, TOKEN, bound, page_size=3)]
            naive = [m["id"] async for m in client.media_back_to(
                IG, TOKEN, bound.replace(tzinfo=None), fields=("id", "permalink"), page_size=3)]
            return aware, naive

    aware, naive = run(main())
    # unreadable times are the caller's to judge; the first older item ends the walk
    assert aware == naive == ["9", "8", "7", "6"]
    queries = [parse_qs(r.query) for r in fake.requests]
    assert [q.get("after") for q in queries] == [None, ["c1"], None, ["c1"]]
    assert queries[0]["fields"] == ["id,caption,timestamp"] and queries[0]["limit"] == ["3"]
    assert queries[2]["fields"] == ["id,permalink,timestamp"]
    assert {r.endpoint for r in rec.records} == {"GET /{ig-user-id}/media"}
    assert_no_token_leak(fake, rec)


def test_media_back_to_stops_on_a_stuck_cursor_and_reads_stories(fake: FakeGraph) -> None:
    recent = "2026-11-30T09:05:00+0000"
    _media_route(fake, {None: _media_page([("2", recent)], "same"), "same": _media_page([("1", recent)], "same")})
    _media_route(fake, {None: {"data": [{"id": "s1", "timestamp": recent}, "junk"]}}, edge="stories")
    rec = Recorder()
    bound = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)

    async def main() -> tuple[list[str], list[str]]:
        async with client_for(fake, rec) as client:
            media = [m["id"] async for m in client.media_back_to(IG, TOKEN, bound)]
            stories = [m["id"] async for m in client.media_back_to(IG, TOKEN, bound, stories=True)]
            return media, stories

    media, stories = run(main())
    assert media == ["2", "1"] and stories == ["s1"]
    assert len(fake.requests) == 3  # two media pages, then no loop on the repeated cursor
    assert rec.records[-1].endpoint == "GET /{ig-user-id}/stories"


# --- resumable upload ----------------------------------------------------------------------


def test_resumable_upload(fake: FakeGraph, tmp_path: Path) -> None:
    upload_path = f"/ig-api-upload/{VERSION}/7007"
    fake.route(
        "POST",
        f"/{VERSION}/{IG}/media",
        lambda _req, _seen: graph_json({"id": "7007", "uri": fake.base_url + upload_path}),
    )
    fake.canned("POST", upload_path, lambda: graph_json({"success": True, "message": "ok"}))
    video = tmp_path / "reel.mp4"
    payload = bytes(range(256)) * 12_289  # a bit over 3 MiB: several chunks
    video.write_bytes(payload)
    rec = Recorder()

    async def main() -> tuple[str, str]:
        async with client_for(fake, rec) as client:
            cid, uri = await client.start_resumable(IG, TOKEN, {"media_type": "REELS"})
            await client.upload_file(uri, TOKEN, video)
            return cid, uri

    cid, uri = run(main())
    assert (cid, uri) == ("7007", fake.base_url + upload_path)
    start, upload = fake.requests
    assert start.form == {"media_type": "REELS", "upload_type": "resumable"}
    assert upload.path == upload_path
    assert upload.headers["Authorization"] == f"OAuth {TOKEN}"
    assert upload.headers["offset"] == "0"
    assert upload.headers["file_size"] == str(len(payload))
    assert upload.headers["Content-Length"] == str(len(payload))
    assert "Transfer-Encoding" not in upload.headers
    assert upload.body == payload
    assert rec.records[1].endpoint == "POST {upload-uri}"
    assert rec.records[1].path == upload_path
    assert rec.records[1].outcome == "ok"
    assert_no_token_leak(fake, rec)


@pytest.mark.parametrize(
    ("retriable", "expected"), [(False, ErrorClass.PERMANENT), (True, ErrorClass.TRANSIENT)]
)
def test_upload_debug_info(
    fake: FakeGraph, tmp_path: Path, retriable: bool, expected: ErrorClass
) -> None:
    fake.canned(
        "POST",
        "/ig-api-upload/v23.0/7008",
        lambda: graph_json(
            {
                "debug_info": {
                    "retriable": retriable,
                    "type": "ProcessingFailedError",
                    "message": "Request processing failed",
                }
            },
            status=400,
        ),
    )
    video = tmp_path / "x.mp4"
    video.write_bytes(b"\0" * 1000)
    rec = Recorder()

    async def main() -> UploadError:
        async with client_for(fake, rec) as client:
            with pytest.raises(UploadError) as info:
                await client.upload_file(fake.base_url + "/ig-api-upload/v23.0/7008", TOKEN, video)
            return info.value

    err = run(main())
    assert err.error_class is expected and err.retriable is retriable
    assert err.type == "ProcessingFailedError"
    assert "Request processing failed" in str(err)
    assert rec.records[0].outcome == "upload_error"
    assert_no_token_leak(fake, rec, str(err))


# --- context and callbacks -----------------------------------------------------------------


def test_call_context_nests_and_follows_tasks(fake: FakeGraph) -> None:
    fake.canned("GET", f"/{VERSION}/me", lambda: graph_json({"id": "1"}))
    rec = Recorder()

    async def tagged(client: GraphClient, account: str, post_id: int) -> None:
        with call_context(account=account):
            with call_context(post_id=post_id):  # inherits the account
                await client.me(TOKEN)
            await client.me(TOKEN)

    async def main() -> None:
        async with client_for(fake, rec) as client:
            await asyncio.gather(*(tagged(client, f"acc{i}", i) for i in range(5)))
            await client.me(TOKEN)  # outside any context

    run(main())
    tags = sorted(((r.account or ""), r.post_id or 0) for r in rec.records)
    expected = sorted([(f"acc{i}", i) for i in range(5)] + [(f"acc{i}", 0) for i in range(5)])
    assert tags == sorted([*expected, ("", 0)])


def test_failing_on_call_does_not_break_the_call(
    fake: FakeGraph, caplog: pytest.LogCaptureFixture
) -> None:
    fake.canned("GET", f"/{VERSION}/me", lambda: graph_json({"id": "1"}))

    def broken(_record: CallRecord) -> None:
        raise RuntimeError("database is locked")

    async def main() -> dict[str, Any]:
        async with GraphClient(fake.base_url, VERSION, 5.0, on_call=broken) as client:
            return await client.me(TOKEN)

    with caplog.at_level(logging.ERROR, logger="scheduler.graph.client"):
        assert run(main()) == {"id": "1"}
    assert "on_call callback failed for GET /me" in caplog.text
    assert TOKEN not in caplog.text


def test_one_pool_serves_concurrent_calls(fake: FakeGraph) -> None:
    async def slowish(_req: web.Request, _seen: Seen) -> web.Response:
        await asyncio.sleep(0.05)
        return graph_json({"id": "1", "status_code": "IN_PROGRESS"})

    fake.route("GET", f"/{VERSION}/42", slowish)
    rec = Recorder()

    async def main() -> None:
        async with client_for(fake, rec, max_connections=4) as client:
            results = await asyncio.gather(
                *(client.container_status("42", TOKEN) for _ in range(20))
            )
            assert {r.status_code for r in results} == {"IN_PROGRESS"}

    run(main())
    assert len(rec.records) == 20
    assert len({s.headers.get("Authorization") for s in fake.requests}) == 1


@pytest.mark.parametrize("through_httpx", [False, True], ids=["direct", "httpx"])
def test_debug_logs_of_the_whole_stack_hold_no_token(
    fake: FakeGraph, caplog: pytest.LogCaptureFixture, through_httpx: bool
) -> None:
    """Both of the client's paths: its own (AiohttpTransport.exchange) and httpx's, taken
    with an injected transport (and for streamed uploads)."""
    fake.canned("POST", f"/{VERSION}/{IG}/media", lambda: graph_error(190, 463, status=400))
    fake.canned("GET", f"/{VERSION}/me", lambda: graph_json({"id": "1"}))
    rec = Recorder()

    async def main() -> None:
        kw: dict[str, Any] = {"transport": AiohttpTransport(4)} if through_httpx else {}
        async with client_for(fake, rec, **kw) as client:
            await client.me(TOKEN)
            with pytest.raises(GraphError):
                await client.create_container(IG, TOKEN, {"image_url": "https://x/a.jpg"})

    # httpx/httpcore/aiohttp included (the daemon's logging set-up quiets httpx's logger)
    with caplog.at_level(logging.DEBUG), caplog.at_level(logging.DEBUG, logger="httpx"):
        run(main())
    assert ("HTTP Request" in caplog.text) is through_httpx  # httpx logs its request lines
    assert len(fake.requests) == 2 and fake.requests[1].form == {"image_url": "https://x/a.jpg"}
    assert TOKEN not in caplog.text
    assert_no_token_leak(fake, rec, caplog.text)


def test_from_settings() -> None:
    from scheduler.config import GraphSettings

    client = GraphClient.from_settings(
        GraphSettings(base_url="http://127.0.0.1:1/", api_version="/v23.0/", timeout_s=3)
    )
    assert client.url("me") == "http://127.0.0.1:1/v23.0/me"
    assert TOKEN not in repr(client)
    run(client.aclose())
