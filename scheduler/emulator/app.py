"""The HTTP layer: Graph API paths and shapes over aiohttp, plus the control API.

Every Graph request goes through one pipeline: count it for usage, roll the fault dice
(latency, dropped connection, 500), apply one-shot injections, check the token, check
throttling, do the work under the state's lock, then maybe replace or delay the answer
(answer-then-error, late publish, answer lost). Each request leaves one log entry.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from .control import add_control_routes
from .errors import (
    GraphError,
    UploadError,
    invalid_parameter,
    new_fbtrace_id,
    object_missing,
    unsupported,
)
from .faults import FaultRoll
from .fields import parse_fields, select
from .mediafiles import add_media_routes
from .messaging import person_node_fields
from .render import (
    MAX_MEDIA_PAGE,
    account_node,
    comment_node,
    container_node,
    media_node,
    paginate,
)
from .state import EmulatorState

log = logging.getLogger(__name__)

STATE_KEY = web.AppKey("emulator_state", EmulatorState)
STOPPING_KEY = web.AppKey("emulator_stopping", asyncio.Event)

VERSION_RE = re.compile(r"^v\d+\.\d+$")
DEFAULT_VERSION = "v23.0"
MAX_BODY = 512 * 1024 * 1024  # resumable uploads carry whole videos
_SECRET_PARAMS = ("access_token", "appsecret_proof")
JSON_BODY_KEY = web.RequestKey("emulator_json_body", object)

# (node kind, method, edge) → endpoint name
_ENDPOINTS: dict[tuple[str, str, str | None], str] = {
    ("account", "GET", None): "user",
    ("account", "GET", "media"): "media_list",
    ("account", "POST", "media"): "media",
    ("account", "POST", "media_publish"): "media_publish",
    ("account", "GET", "content_publishing_limit"): "content_publishing_limit",
    ("account", "GET", "stories"): "stories",
    ("container", "GET", None): "container_status",
    ("media", "GET", None): "media_info",
    ("media", "GET", "children"): "media_children",
    ("media", "GET", "comments"): "comments",
    ("media", "POST", "comments"): "comments",
    ("comment", "GET", None): "comment",
    ("comment", "POST", None): "comment",
    ("comment", "DELETE", None): "comment",
    ("comment", "GET", "replies"): "replies",
    ("comment", "POST", "replies"): "replies",
    ("account", "POST", "messages"): "messages",
    ("account", "POST", "mentions"): "mentions",
    ("person", "GET", None): "profile",
    ("account", "POST", "subscribed_apps"): "subscribed_apps",
}


def build_app(state: EmulatorState) -> web.Application:
    """The aiohttp application serving the fake Graph API over `state`."""
    app = web.Application(client_max_size=MAX_BODY)
    app[STATE_KEY] = state
    app[STOPPING_KEY] = asyncio.Event()
    app.on_shutdown.append(_on_shutdown)
    add_control_routes(app, state)
    add_media_routes(app)
    app.router.add_route("*", "/ig-api-upload/{version}/{container_id}", _handle_upload)
    app.router.add_route("*", "/{path:.*}", _handle_graph)
    return app


async def _on_shutdown(app: web.Application) -> None:
    app[STOPPING_KEY].set()  # wakes delayed answers so the server stops promptly


@dataclass
class Call:
    """One Graph request, routed."""

    request: web.Request
    method: str
    version: str | None
    node: str | None
    edge: str | None
    kind: str
    endpoint: str
    account: str | None
    params: dict[str, str]
    token: str | None
    error: GraphError | None = None  # routing already knows the answer is this error
    log_params: dict[str, Any] = field(default_factory=dict)

    @property
    def state(self) -> EmulatorState:
        return self.request.app[STATE_KEY]

    def fields(self) -> Any:
        return parse_fields(self.params.get("fields"))

    def link(self, changes: dict[str, str | None]) -> str:
        """This request's URL with query parameters changed (for paging.next/previous)."""
        query = dict(self.request.query)
        for key, value in changes.items():
            if value is None:
                query.pop(key, None)
            else:
                query[key] = value
        return str(self.request.url.with_query(query))


# ---------------------------------------------------------------------- request parsing
async def read_params(request: web.Request) -> dict[str, str]:
    """Query string and body (form, multipart or JSON) merged; the body wins."""
    params = {k: v for k, v in request.query.items()}
    if request.method in ("POST", "DELETE") and request.can_read_body:
        ctype = request.content_type
        if ctype == "application/json":
            try:
                body = await request.json()
            except ValueError:
                raise invalid_parameter("the request body is not valid JSON") from None
            if not isinstance(body, dict):
                raise invalid_parameter("the JSON body must be an object")
            params.update({k: _as_param(v) for k, v in body.items()})
            request[JSON_BODY_KEY] = body  # logged as sent, so tests can assert exact bodies
        elif ctype in ("application/x-www-form-urlencoded", "multipart/form-data"):
            form = await request.post()
            params.update({k: v for k, v in form.items() if isinstance(v, str)})
    return params


def _as_param(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value)


def extract_token(request: web.Request, params: dict[str, str]) -> str | None:
    """`Authorization: Bearer|OAuth <token>`, else the `access_token` parameter."""
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() in ("bearer", "oauth") and value.strip():
        return value.strip()
    return params.get("access_token") or None


def route(state: EmulatorState, request: web.Request, params: dict[str, str]) -> Call:
    """Name the endpoint and find the account a request is about (call with the lock held)."""
    method = request.method.upper()
    token = extract_token(request, params)
    segments = [s for s in request.path.split("/") if s]
    version = segments.pop(0) if segments and VERSION_RE.match(segments[0]) else None
    token_account = state.token_account_id(token)
    call = Call(
        request=request,
        method=method,
        version=version,
        node=None,
        edge=None,
        kind="none",
        endpoint="unknown",
        account=token_account,
        params=params,
        token=token,
    )
    if segments == ["refresh_access_token"] and method == "GET":
        call.kind, call.endpoint = "account", "refresh_access_token"
        return call
    if not 1 <= len(segments) <= 2:
        call.error = unsupported(method, request.path)
        return call
    node, edge = segments[0], (segments[1] if len(segments) == 2 else None)
    call.node, call.edge = node, edge
    if node == "me":
        call.kind, call.node = "account", token_account
    else:
        kind, owner = state.lookup(node)
        if kind == "missing":
            call.kind = state.missing_kind(node) or "none"
            call.endpoint = _ENDPOINTS.get((call.kind, method, edge), "unknown")
            call.error = object_missing(node, method)
            return call
        call.kind, call.account = kind, owner if owner is not None else token_account
    call.endpoint = _ENDPOINTS.get((call.kind, method, edge), "unknown")
    if node == "me" and call.endpoint == "user":
        call.endpoint = "me"
    if call.endpoint == "unknown":
        call.error = unsupported(method, request.path)
    return call


# ---------------------------------------------------------------------- endpoint handlers
Handler = Callable[[Call], dict[str, Any]]


def _user(c: Call) -> dict[str, Any]:
    assert c.account is not None
    return account_node(c.state, c.state.get_account(c.account), c.fields())


def _create_container(c: Call) -> dict[str, Any]:
    assert c.account is not None
    base = f"{c.request.scheme}://{c.request.host}"
    prefix = f"{base}/ig-api-upload/{c.version or DEFAULT_VERSION}"
    params = {k: v for k, v in c.params.items() if k != "fields"}
    return c.state.create_container(c.account, params, prefix)


def _publish(c: Call) -> dict[str, Any]:
    assert c.account is not None
    params = {k: v for k, v in c.params.items() if k != "fields"}
    return {"id": c.state.publish(c.account, params).id}


def _publishing_limit(c: Call) -> dict[str, Any]:
    assert c.account is not None
    figures = c.state.quota(c.account, c.params.get("since"))
    return {
        "data": [select("ContentPublishingLimit", figures, c.fields(), default=("quota_usage",))]
    }


def _media_list(c: Call, *, stories: bool) -> dict[str, Any]:
    assert c.account is not None
    items = c.state.account_media(c.account, stories=stories)
    page, paging = paginate(items, c.params, c.link, max_limit=MAX_MEDIA_PAGE)
    sel = c.fields()
    out: dict[str, Any] = {"data": [media_node(c.state, m, sel) for m in page]}
    if paging:
        out["paging"] = paging
    return out


def _container_status(c: Call) -> dict[str, Any]:
    assert c.node is not None
    container = c.state.get_container(c.node, fresh_check=True)
    return container_node(c.state, container, c.fields())


def _media_info(c: Call) -> dict[str, Any]:
    assert c.node is not None
    return media_node(c.state, c.state.get_media(c.node, fresh_check=True), c.fields())


def _media_children(c: Call) -> dict[str, Any]:
    assert c.node is not None
    media = c.state.get_media(c.node)
    sel = c.fields()
    return {"data": [media_node(c.state, c.state.get_media(m), sel) for m in media.children]}


def _comments(c: Call) -> dict[str, Any]:
    assert c.node is not None
    if c.method == "POST":
        return {"id": c.state.post_comment(c.node, _without_fields(c.params), c.token)}
    items = c.state.top_level_comments(c.node)
    page, paging = paginate(items, c.params, c.link, max_limit=c.state.comments_page_limit())
    sel = c.fields()
    out: dict[str, Any] = {"data": [comment_node(c.state, cm, sel, _base(c)) for cm in page]}
    if paging:
        out["paging"] = paging
    return out


def _replies(c: Call) -> dict[str, Any]:
    assert c.node is not None
    if c.method == "POST":
        return {"id": c.state.post_reply(c.node, _without_fields(c.params), c.token)}
    items = c.state.replies(c.node)
    page, paging = paginate(
        items, c.params, c.link, max_limit=c.state.comments_page_limit(), descending=False
    )
    sel = c.fields()
    out: dict[str, Any] = {"data": [comment_node(c.state, cm, sel, _base(c)) for cm in page]}
    if paging:
        out["paging"] = paging
    return out


def _comment(c: Call) -> dict[str, Any]:
    assert c.node is not None
    if c.method == "DELETE":
        c.state.delete_comment(c.node)
        return {"success": True}
    if c.method == "POST":
        c.state.hide_comment(c.node, _without_fields(c.params))
        return {"success": True}
    return comment_node(c.state, c.state.get_comment(c.node), c.fields(), _base(c))


def _messages(c: Call) -> dict[str, Any]:
    assert c.account is not None
    return c.state.send_message(c.account, _without_fields(c.params))


def _profile(c: Call) -> dict[str, Any]:
    assert c.node is not None
    person = c.state.get_person(c.node)
    return select("User", person_node_fields(person), c.fields(), default=("name",))


def _refresh(c: Call) -> dict[str, Any]:
    return c.state.refresh_token(c.token, c.params)


def _without_secrets(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k not in _SECRET_PARAMS}


def _base(c: Call) -> str:
    """This server's Graph base URL, for `paging.next` of nested edges."""
    return f"{c.request.scheme}://{c.request.host}/{c.version or DEFAULT_VERSION}"


def _without_fields(params: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in params.items() if k != "fields"}


HANDLERS: dict[str, Handler] = {
    "me": _user,
    "user": _user,
    "media": _create_container,
    "media_publish": _publish,
    "content_publishing_limit": _publishing_limit,
    "media_list": lambda c: _media_list(c, stories=False),
    "stories": lambda c: _media_list(c, stories=True),
    "container_status": _container_status,
    "media_info": _media_info,
    "media_children": _media_children,
    "comments": _comments,
    "replies": _replies,
    "comment": _comment,
    "refresh_access_token": _refresh,
    "messages": _messages,
    "mentions": lambda c: {"id": c.state.post_mention_reply(c.account or "", _without_fields(c.params))},
    "profile": _profile,
    "subscribed_apps": lambda c: c.state.subscribe_app(c.account or "", c.params),
}


# ---------------------------------------------------------------------- the pipeline
async def _handle_graph(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    early: GraphError | None = None
    try:
        params = await read_params(request)
    except GraphError as e:
        params, early = dict(request.query), e
    with state.lock:
        c = route(state, request, params)
    if early is not None:
        c.error = early
    c.log_params = {k: v for k, v in params.items() if k not in _SECRET_PARAMS}

    def work() -> tuple[int, dict[str, Any]]:
        if c.error is not None:
            raise c.error
        with state.lock:
            return 200, HANDLERS[c.endpoint](c)

    return await _pipeline(c, work)


async def _handle_upload(request: web.Request) -> web.StreamResponse:
    """POST /ig-api-upload/{v}/{container-id}: rupload.facebook.com's resumable upload."""
    state = request.app[STATE_KEY]
    cid = request.match_info["container_id"]
    version = request.match_info["version"]
    token = extract_token(request, dict(request.query))
    with state.lock:
        kind, owner = state.lookup(cid)
        account = owner if kind == "container" else state.token_account_id(token)
    headers = request.headers
    c = Call(
        request=request,
        method=request.method.upper(),
        version=version,
        node=cid,
        edge=None,
        kind="container",
        endpoint="upload",
        account=account,
        params={},
        token=token,
    )
    if c.method != "POST" or not VERSION_RE.match(version):
        c.error = unsupported(c.method, request.path)
    c.log_params = {k: headers[k] for k in ("offset", "file_size", "file_url") if k in headers}
    data = b""

    def work() -> tuple[int, dict[str, Any]]:
        if c.error is not None:
            raise c.error
        c.log_params["bytes"] = len(data)
        try:
            return 200, state.upload(
                cid,
                offset=headers.get("offset"),
                file_size=headers.get("file_size"),
                data=data,
                file_url=headers.get("file_url"),
            )
        except UploadError as e:
            return e.http_status, e.body()

    async def read_body() -> None:
        nonlocal data
        data = await request.read()

    return await _pipeline(c, work, before_work=read_body)


async def _pipeline(
    c: Call,
    work: Callable[[], tuple[int, dict[str, Any]]],
    before_work: Callable[[], Awaitable[None]] | None = None,
) -> web.StreamResponse:
    state = c.state
    started = time.monotonic()
    verdict = state.record_call(c.account)
    dice: FaultRoll = state.roll_faults(c.endpoint, c.method, c.account)
    if dice.delay_s > 0:
        await _sleep(c.request.app, dice.delay_s)
    if dice.drop:
        _log(c, started, "dropped", None)
        return _drop(c.request)
    if before_work is not None:
        await before_work()
    fbtrace = new_fbtrace_id()
    try:
        if dice.error500 is not None:
            raise dice.error500
        injected = state.take_injection(c.endpoint, c.account, c.method, after=False)
        if injected is not None:
            raise injected
        state.check_auth(c.account, c.token)
        if verdict is not None:
            raise state.throttle_error(verdict)
        status, body = work()
        injected = state.take_injection(c.endpoint, c.account, c.method, after=True)
        if injected is not None and status < 400:
            raise injected
        if dice.comment_error and status < 400:
            raise _comment_error(state.faults.comment_error_http500)
    except GraphError as e:
        response = _error_response(c, e, fbtrace)
        return await _finish(c, started, response, "error", dice, error=e)
    except Exception as e:  # a bug in the emulator: answer like Graph's "unknown error"
        log.exception("emulator failed on %s %s", c.method, c.request.path)
        err = GraphError(1, f"An unknown error occurred (emulator: {e!r})", http_status=500)
        return await _finish(c, started, _error_response(c, err, fbtrace), "error", dice, error=err)
    response = _json(c, status, body)
    return await _finish(c, started, response, "ok" if status < 400 else "error", dice)


async def _finish(
    c: Call,
    started: float,
    response: web.Response,
    outcome: str,
    dice: FaultRoll,
    error: GraphError | None = None,
) -> web.StreamResponse:
    if dice.drop_after:
        _log(c, started, "dropped", response.status, error)
        return _drop(c.request)
    if dice.late_publish and c.endpoint == "media_publish" and outcome == "ok":
        # The publish happened; the answer arrives after the client has given up.
        _log(c, started, "late", response.status, error)
        await _sleep(c.request.app, c.state.faults.late_publish_delay_s)
        return response
    _log(c, started, outcome, response.status, error)
    return response


def _comment_error(http500: bool) -> GraphError:
    if http500:
        return GraphError(
            2,
            "An unexpected error has occurred. Please retry your request later.",
            http_status=500,
            is_transient=True,
        )
    return GraphError(
        20,
        "(#20) An error occurred while posting the comment.",
        1772107,
        user_title="Comment not posted",
        user_msg="The comment could not be confirmed.",
    )


def _headers(c: Call, fbtrace: str) -> dict[str, str]:
    headers = c.state.usage_headers(c.account)
    headers["x-fb-trace-id"] = fbtrace
    headers["facebook-api-version"] = c.version or DEFAULT_VERSION
    return headers


def _json(c: Call, status: int, body: dict[str, Any]) -> web.Response:
    return web.json_response(body, status=status, headers=_headers(c, new_fbtrace_id()))


def _error_response(c: Call, e: GraphError, fbtrace: str) -> web.Response:
    headers = _headers(c, fbtrace)
    if e.code in (104, 190):
        headers["WWW-Authenticate"] = f'OAuth "Facebook Platform" "invalid_token" "{e.message}"'
    return web.json_response(e.body(fbtrace), status=e.http_status, headers=headers)


def _drop(request: web.Request) -> web.StreamResponse:
    """Close the connection without answering: the client sees a dropped connection."""
    if request.transport is not None:
        request.transport.close()
    return web.Response(status=500)  # never reaches the client


async def _sleep(app: web.Application, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(app[STOPPING_KEY].wait(), timeout=seconds)


def _log(
    c: Call, started: float, outcome: str, status: int | None, error: GraphError | None = None
) -> None:
    body = c.request.get(JSON_BODY_KEY)
    c.state.log_request(
        {
            "t": c.state.now(),
            "method": c.method,
            "path": c.request.path,
            "endpoint": c.endpoint,
            "account": c.account,
            "params": dict(c.log_params),
            "status": status,
            "error_code": error.code if error else None,
            "error_subcode": error.subcode if error else None,
            "outcome": outcome,
            "duration_ms": round((time.monotonic() - started) * 1000, 1),
            **({"body": _without_secrets(body)} if isinstance(body, dict) else {}),
        }
    )


__all__ = ["STATE_KEY", "build_app"]
