"""The control API under /_emulator/: lets a test in another process drive and inspect the
emulator. Not part of Graph: no usage headers, no faults, not in the request log.

GET  /_emulator/health                         {"ok": true, "now": t}
GET  /_emulator/requests[?endpoint=&account=&outcome=&since=N]   request log (list)
GET  /_emulator/media[?account=]               published media (list, publishing order)
GET  /_emulator/containers                     containers by id (object)
GET  /_emulator/comments[?media_id=]           comments and replies (list)
POST /_emulator/comments                       {media_id, text, username?, parent_id?, from_id?}
                                               → {id}; with "count": N comments → {ids}
GET  /_emulator/people                         people by IGSID (object)
POST /_emulator/people                         add_person kwargs (object or list)
GET  /_emulator/messages[?account=]            messages the Send API accepted (list)
GET  /_emulator/accounts                       accounts by id (object)
POST /_emulator/accounts                       add_account kwargs (object or list)
GET  /_emulator/config                         settings snapshot
POST /_emulator/config                         EmulatorState.apply_config body → snapshot
POST /_emulator/inject                         EmulatorState.inject kwargs (object or list);
                                               with "fault": inject_fault kwargs
POST /_emulator/advance                        {"seconds": n} → {"now", "clock_offset_s"}
POST /_emulator/reset                          forget everything → {"ok": true}
GET  /_emulator/webhooks                       {url, app_secret_set}
POST /_emulator/webhooks                       {url?, app_secret?} → {url, app_secret_set}
POST /_emulator/webhooks/deliver               {events: [spec…], url?, app_secret?, batch?,
                                               repeat?, signature?} → {deliveries, events}
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .webhooks import WebhookTarget, build_body, build_items, check_options, deliver, encode

if TYPE_CHECKING:
    from .state import EmulatorState

ControlHandler = Callable[[web.Request], Awaitable[Any]]


class _NotFound(Exception):
    pass


def add_control_routes(app: web.Application, state: EmulatorState) -> None:
    def route(method: str, path: str, fn: ControlHandler) -> None:
        async def handler(request: web.Request) -> web.Response:
            try:
                result = await fn(request)
            except _NotFound as e:
                return web.json_response({"error": str(e)}, status=404)
            except (ValueError, TypeError, KeyError) as e:
                return web.json_response({"error": f"{type(e).__name__}: {e}"}, status=400)
            except Exception as e:  # GraphError from a lookup, e.g. unknown media id
                return web.json_response({"error": str(e)}, status=400)
            return web.json_response(result)

        app.router.add_route(method, f"/_emulator/{path}", handler)

    async def health(_: web.Request) -> Any:
        return {"ok": True, "now": state.now()}

    async def requests(request: web.Request) -> Any:
        q = request.query
        entries = state.requests[int(q.get("since", "0")) :]
        for key in ("endpoint", "account", "outcome"):
            if key in q:
                entries = [e for e in entries if e.get(key) == q[key]]
        return entries

    async def media(request: web.Request) -> Any:
        return state.published_media(request.query.get("account"))

    async def containers(_: web.Request) -> Any:
        return state.containers

    async def comments(request: web.Request) -> Any:
        if request.method == "POST":
            body = await _body(request)
            if "count" in body:  # many comments at once, e.g. to page through them
                ids = state.add_comments(
                    str(body["media_id"]),
                    int(body["count"]),
                    str(body.get("text", "comment")),
                    str(body.get("username", "visitor")),
                    parent_id=body.get("parent_id"),
                )
                return {"ids": ids}
            comment_id = state.add_comment(
                str(body["media_id"]),
                str(body["text"]),
                str(body.get("username", "visitor")),
                body.get("parent_id"),
                like_count=int(body.get("like_count", 0)),
                from_id=None if body.get("from_id") is None else str(body["from_id"]),
            )
            return {"id": comment_id}
        return state.comments(request.query.get("media_id"))

    async def people(request: web.Request) -> Any:
        if request.method == "POST":
            body = await _body(request)
            items = body if isinstance(body, list) else [body]
            added = [state.add_person(**item) for item in items]
            return added if isinstance(body, list) else added[0]
        return state.people()

    async def messages(request: web.Request) -> Any:
        return state.sent_messages(request.query.get("account"))

    async def accounts(request: web.Request) -> Any:
        if request.method == "POST":
            body = await _body(request)
            items = body if isinstance(body, list) else [body]
            added = [state.add_account(**item) for item in items]
            return added if isinstance(body, list) else added[0]
        return state.accounts

    async def config(request: web.Request) -> Any:
        if request.method == "POST":
            return state.apply_config(await _body(request))
        return state.config_snapshot()

    async def inject(request: web.Request) -> Any:
        body = await _body(request)
        for item in body if isinstance(body, list) else [body]:
            if "fault" in item:  # a transport fault rather than a Graph error
                item = dict(item)
                state.inject_fault(kind=item.pop("fault"), **item)
            else:
                state.inject(**item)
        return {"ok": True}

    async def advance(request: web.Request) -> Any:
        body = await _body(request)
        now = state.advance(float(body["seconds"]))
        return {"now": now, "clock_offset_s": state.clock_offset_s}

    async def reset(_: web.Request) -> Any:
        state.reset()
        return {"ok": True}

    target = WebhookTarget()

    async def webhooks(request: web.Request) -> Any:
        if request.method == "POST":
            body = await _body(request)
            for key in ("url", "app_secret"):
                if key in body:
                    setattr(target, key, None if body[key] is None else str(body[key]))
        return target.snapshot()

    async def webhooks_deliver(request: web.Request) -> Any:
        body = await _body(request)
        url = body.get("url") or target.url
        secret = body.get("app_secret") or target.app_secret
        if not url or not secret:
            raise ValueError("no url or app_secret: give them here or POST /_emulator/webhooks")
        specs = body.get("events")
        if not isinstance(specs, list) or not specs:
            raise ValueError("events must be a non-empty list")
        repeat, signature = int(body.get("repeat", 1)), str(body.get("signature", "valid"))
        check_options(repeat, signature)  # before any comment is added to the model
        items = build_items(state, specs)
        groups = [items] if body.get("batch", True) else [[item] for item in items]
        results = await deliver(str(url), str(secret), [encode(build_body(g)) for g in groups],
                                repeat=repeat, signature=signature)
        return {"deliveries": results, "events": [item.ids for item in items]}

    async def not_found(request: web.Request) -> Any:
        raise _NotFound(f"no control endpoint {request.method} {request.path}")

    route("GET", "health", health)
    route("GET", "requests", requests)
    route("GET", "media", media)
    route("GET", "containers", containers)
    route("*", "comments", comments)
    route("*", "accounts", accounts)
    route("*", "people", people)
    route("GET", "messages", messages)
    route("*", "config", config)
    route("POST", "inject", inject)
    route("POST", "advance", advance)
    route("POST", "reset", reset)
    route("*", "webhooks", webhooks)
    route("POST", "webhooks/deliver", webhooks_deliver)
    route("*", "{tail:.*}", not_found)


async def _body(request: web.Request) -> Any:
    if not request.can_read_body:
        return {}
    try:
        return await request.json()
    except json.JSONDecodeError as e:
        raise ValueError(f"the body is not JSON: {e}") from None
