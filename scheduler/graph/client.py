"""Async Graph API client: one httpx connection pool, typed calls, one CallRecord per call.

Every call, successful or not, is reported to `on_call` with the usage headers' figures and the
caller's context (account, post), so the history table sees exactly what the API saw. Tokens
travel only in the Authorization header: URLs end up in logs (httpx logs every request line).
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import os
import re
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol
from urllib.parse import parse_qs, quote, urlsplit

import httpx

from scheduler import __version__
from scheduler.clock import SYSTEM_CLOCK, Clock, to_aware
from scheduler.graph.endpoints import CREATE_CONTAINER, TOKEN_CHECK
from scheduler.graph.engagement import EngagementMixin
from scheduler.graph.errors import ErrorClass, GraphError, GraphUnavailable, UploadError, redact
from scheduler.graph.subscriptions import SubscriptionMixin
from scheduler.graph.transport import AiohttpTransport, Answer
from scheduler.graph.usage import Usage, parse_usage
from scheduler.tls import tls_context

log = logging.getLogger(__name__)

UPLOAD_CHUNK_BYTES = 1024 * 1024
MEDIA_FIELDS = ("id", "permalink", "media_type", "media_product_type", "timestamp")
COMMENT_FIELDS = ("id", "text", "username", "timestamp")
MEDIA_PAGE_SIZE = 50  # media per page when paging back through an account's media


# --- call context --------------------------------------------------------------------------


@dataclass(frozen=True)
class CallContext:
    account: str | None = None
    post_id: int | None = None


_context: contextvars.ContextVar[CallContext] = contextvars.ContextVar(
    "igsched_graph_call_context",
    default=CallContext(),  # noqa: B039 - frozen
)


@contextmanager
def call_context(account: str | None = None, post_id: int | None = None) -> Iterator[CallContext]:
    """Tag every Graph call made inside the block. Arguments left None keep the outer value."""
    outer = _context.get()
    ctx = CallContext(
        account=account if account is not None else outer.account,
        post_id=post_id if post_id is not None else outer.post_id,
    )
    token = _context.set(ctx)
    try:
        yield ctx
    finally:
        _context.reset(token)


def current_call_context() -> CallContext:
    return _context.get()


# --- records and results -------------------------------------------------------------------


@dataclass
class CallRecord:
    """One API call as the history table stores it. Never holds a token."""

    method: str
    endpoint: str  # template without ids, e.g. "POST /{ig-user-id}/media"
    path: str  # concrete path without query, e.g. "/v23.0/1784.../media"
    http_status: int | None
    duration_ms: float
    error_code: int | None
    error_subcode: int | None
    error_message: str | None
    fbtrace_id: str | None
    usage: Usage
    outcome: str  # "ok", "error", "upload_error", "cancelled" or a GraphUnavailable kind
    account: str | None
    post_id: int | None
    started_at: datetime  # UTC, aware
    error_class: ErrorClass | None = None


@dataclass
class ContainerStatus:
    id: str
    status_code: str  # IN_PROGRESS, FINISHED, PUBLISHED, ERROR, EXPIRED
    status: str | None


@dataclass
class PublishingLimit:
    quota_usage: int
    quota_total: int
    quota_duration: int  # seconds


@dataclass(frozen=True)
class RefreshedToken:
    access_token: str = field(repr=False)
    expires_in: int | None  # seconds; None when the answer did not say


class _GraphSettingsLike(Protocol):
    base_url: str
    api_version: str
    timeout_s: float


OnCall = Callable[[CallRecord], None]
# runs before every call with the caller's context; raising stops the call (nothing is sent
# and nothing recorded): the pipeline's pause guard lives here
BeforeCall = Callable[[CallContext, str], None]  # (context, endpoint name)


# --- helpers -------------------------------------------------------------------------------


def _seg(value: str | int) -> str:
    """One path segment; quoting keeps an odd id from changing the path."""
    text = str(value)
    if not text:
        raise ValueError("empty id in a Graph API path")
    if text in (".", ".."):  # quoting leaves dots alone, and a dot segment moves up the path
        raise ValueError("a dot segment is not an id in a Graph API path")
    return quote(text, safe="")


# A URL the Graph client's own path sends as it is: a scheme, a host, and percent-encoded path
# segments (ids are quoted by _seg). Anything else goes through httpx, which encodes it.
_SENDABLE_URL = re.compile(r"^https?://[A-Za-z0-9.\-:\[\]]+(/[A-Za-z0-9\-._~%!$&'()*+,;=:@]*)*$")


_ID_SEGMENT = re.compile(r"^[0-9_]+$")


def _default_endpoint(method: str, path: str) -> str:
    parts = [("{id}" if _ID_SEGMENT.match(p) else p) for p in path.strip("/").split("/")]
    return f"{method} /" + "/".join(parts)


def _as_int(value: Any, default: int = 0) -> int:
    if isinstance(value, bool):
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


async def _file_chunks(path: Path, size: int) -> AsyncIterator[bytes]:
    # Streamed in chunks, read off the event loop: reels can be 300 MB.
    remaining = size
    with open(os.open(path, os.O_RDONLY | os.O_NOFOLLOW), "rb") as f:  # a symlink is not followed
        while remaining > 0:
            chunk = await asyncio.to_thread(f.read, min(UPLOAD_CHUNK_BYTES, remaining))
            if not chunk:
                break
            remaining -= len(chunk)
            yield chunk


_CONNECT_ERRORS = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,  # no connection was obtained, so nothing was sent either
    httpx.ProxyError,
    httpx.UnsupportedProtocol,
)


# --- the client ----------------------------------------------------------------------------


class GraphClient(EngagementMixin, SubscriptionMixin):
    def __init__(
        self,
        base_url: str,
        api_version: str,
        timeout_s: float,
        on_call: OnCall | None = None,
        max_connections: int = 100,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        before_call: BeforeCall | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._before_call = before_call
        self._clock = clock  # stamps each CallRecord (the container budget counts by it)
        self.api_version = api_version.strip("/")
        self.timeout_s = timeout_s
        self._on_call = on_call

        # aiohttp's pool under httpx's interface (transport.py: a tenth of httpx's own CPU
        # per request); an injected transport (tests) replaces it. Ordinary calls skip httpx's
        # request and response objects on the default transport (AiohttpTransport.exchange).
        self._timeout = httpx.Timeout(timeout_s, connect=min(timeout_s, 10.0))
        self._user_agent = f"igsched/{__version__}"
        self._direct = AiohttpTransport(max_connections) if transport is None else None
        self._http = httpx.AsyncClient(
            timeout=self._timeout,
            follow_redirects=False,  # a redirect would replay the Authorization header elsewhere
            headers={"User-Agent": self._user_agent},
            transport=transport or self._direct,
            verify=tls_context(),  # one per process (scheduler/tls.py)
        )

    @classmethod
    def from_settings(
        cls, settings: _GraphSettingsLike, on_call: OnCall | None = None, **kwargs: Any
    ) -> GraphClient:
        return cls(settings.base_url, settings.api_version, settings.timeout_s, on_call, **kwargs)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> GraphClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"GraphClient({self.base_url!r}, {self.api_version!r})"

    # --- core ------------------------------------------------------------------------------

    def url(self, path: str) -> str:
        return f"{self.base_url}/{self.api_version}/{path.lstrip('/')}"

    async def request(
        self,
        method: str,
        path: str,
        token: str,
        params: Mapping[str, Any] | None = None,
        data: Mapping[str, Any] | None = None,
        endpoint_name: str | None = None,
        *,
        require: Sequence[str] = (),
        json_body: Mapping[str, Any] | None = None,
    ) -> tuple[dict[str, Any], Usage]:
        """One Graph call to `{base_url}/{api_version}/{path}`; returns the JSON object.

        `require` names keys a successful answer must have; without them the answer counts as
        unreadable (GraphUnavailable "bad_answer", AMBIGUOUS: the call may have taken effect).
        """
        method = method.upper()
        return await self._send(
            method,
            self.url(path),
            token=token,
            endpoint=endpoint_name or _default_endpoint(method, path),
            params=params,
            data=data,
            require=require,
            json_body=json_body,
        )

    async def _send(
        self,
        method: str,
        url: str,
        *,
        token: str,
        endpoint: str,
        auth_scheme: str = "Bearer",
        params: Mapping[str, Any] | None = None,
        data: Mapping[str, Any] | None = None,
        content: AsyncIterator[bytes] | None = None,
        headers: Mapping[str, str] | None = None,
        require: Sequence[str] = (),
        upload: bool = False,
        json_body: Mapping[str, Any] | None = None,
    ) -> tuple[dict[str, Any], Usage]:
        ctx = _context.get()
        if self._before_call is not None:
            self._before_call(ctx, endpoint)
        secrets = (token,)
        request_headers = {"Authorization": f"{auth_scheme} {token}", **(headers or {})}
        started_at = to_aware(self._clock.now())
        t0 = time.perf_counter()
        status: int | None = None
        usage = Usage()
        body: dict[str, Any] = {}
        error: GraphError | None = None
        outcome = "ok"
        try:
            answer = await self._exchange(method, url, params, data, content, json_body, request_headers)
        except asyncio.CancelledError:
            # Shutdown mid-call: record it (the call may have taken effect), then let it go.
            self._emit(
                self._record(
                    method, endpoint, url, None, t0, None, usage, "cancelled", ctx, started_at
                )
            )
            raise
        except httpx.RequestError as exc:
            error = self._transport_error(exc, endpoint, secrets)
        else:
            status = answer.status
            usage = parse_usage(answer.headers)
            body, error = self._read_answer(answer, endpoint, usage, secrets, require, upload)

        if isinstance(error, GraphUnavailable):
            outcome = error.kind
        elif isinstance(error, UploadError):
            outcome = "upload_error"
        elif error is not None:
            outcome = "error"
        self._emit(
            self._record(method, endpoint, url, status, t0, error, usage, outcome, ctx, started_at)
        )
        if error is not None:
            raise error
        return body, usage

    async def _exchange(
        self,
        method: str,
        url: str,
        params: Mapping[str, Any] | None,
        data: Mapping[str, Any] | None,
        content: AsyncIterator[bytes] | None,
        json_body: Mapping[str, Any] | None,
        headers: Mapping[str, str],
    ) -> Answer:
        if self._direct is not None and content is None and _SENDABLE_URL.match(url):
            return await self._direct.exchange(
                method, url, params=params, data=data, json_body=json_body,
                headers={"User-Agent": self._user_agent, **headers}, timeout=self._timeout)
        response = await self._http.request(
            method,
            url,
            params=params,
            data=data,
            content=content,
            json=json_body,  # the Send API takes nested JSON (messages, templates)
            headers=headers,
        )
        return Answer(response.status_code, response.reason_phrase, response.headers, response.content)

    def _transport_error(
        self, exc: httpx.RequestError, endpoint: str, secrets: Sequence[str]
    ) -> GraphUnavailable:
        name = type(exc).__name__
        detail = redact(str(exc), secrets)
        if isinstance(exc, _CONNECT_ERRORS):
            kind = "connect"
            if isinstance(exc, httpx.PoolTimeout):
                detail = f"no free connection within {self.timeout_s:g} s"
        elif isinstance(exc, httpx.TimeoutException):
            kind = "timeout"
            detail = detail or f"no answer within {self.timeout_s:g} s"
        else:
            kind = "connection"  # dropped mid-request: the server may have acted on it
        message = f"{endpoint}: {name}" + (f": {detail}" if detail else "")
        return GraphUnavailable(kind, message, endpoint=endpoint, secrets=secrets)

    @staticmethod
    def _read_answer(
        response: Answer,
        endpoint: str,
        usage: Usage,
        secrets: Sequence[str],
        require: Sequence[str],
        upload: bool,
    ) -> tuple[dict[str, Any], GraphError | None]:
        status = response.status
        common: dict[str, Any] = {"usage": usage, "endpoint": endpoint, "secrets": secrets}
        try:
            parsed: Any = json.loads(response.body) if response.body else None
        except ValueError:
            parsed = None

        if isinstance(parsed, dict) and isinstance(parsed.get("error"), dict):
            return {}, GraphError.from_body(parsed["error"], http_status=status, **common)
        if upload and isinstance(parsed, dict) and isinstance(parsed.get("debug_info"), dict):
            info = parsed["debug_info"]
            return {}, UploadError(
                str(info.get("message") or "(no message)"),
                retriable=info.get("retriable") is True,
                type=info.get("type") if isinstance(info.get("type"), str) else None,
                http_status=status,
                **common,
            )
        what = f"HTTP {status} {response.reason}".rstrip()
        if status >= 500:
            return {}, GraphUnavailable(
                "http_5xx",
                f"{endpoint}: {what} without a Graph error body",
                http_status=status,
                **common,
            )
        if status >= 300:
            return {}, GraphError(
                f"{endpoint}: {what} without a Graph error body", http_status=status, **common
            )
        if isinstance(parsed, bool):  # some endpoints answer a bare `true`
            parsed = {"success": parsed}
        if not isinstance(parsed, dict):
            return {}, GraphUnavailable(
                "bad_answer",
                f"{endpoint}: {what} is not a JSON object",
                http_status=status,
                **common,
            )
        if upload and parsed.get("success") is not True:
            return {}, UploadError(
                f"upload answered without success: {str(parsed.get('message') or '')[:200]}",
                retriable=True,  # nothing says it is final; the caller's retry budget bounds it
                http_status=status,
                **common,
            )
        missing = [key for key in require if parsed.get(key) in (None, "")]
        if missing:
            return {}, GraphUnavailable(
                "bad_answer",
                f"{endpoint}: answer lacks {', '.join(missing)}",
                http_status=status,
                **common,
            )
        return parsed, None

    @staticmethod
    def _record(
        method: str,
        endpoint: str,
        url: str,
        status: int | None,
        t0: float,
        error: GraphError | None,
        usage: Usage,
        outcome: str,
        ctx: CallContext,
        started_at: datetime,
    ) -> CallRecord:
        return CallRecord(
            method=method,
            endpoint=endpoint,
            path=urlsplit(url).path,
            http_status=status,
            duration_ms=(time.perf_counter() - t0) * 1000.0,
            error_code=error.code if error else None,
            error_subcode=error.subcode if error else None,
            error_message=error.message if error else None,  # code, class, trace: own fields
            fbtrace_id=error.fbtrace_id if error else None,
            usage=usage,
            outcome=outcome,
            account=ctx.account,
            post_id=ctx.post_id,
            started_at=started_at,
            error_class=error.error_class if error else None,
        )

    def _emit(self, record: CallRecord) -> None:
        if self._on_call is None:
            return
        try:
            self._on_call(record)
        except Exception:  # bookkeeping must never turn a call's result into a failure
            log.exception("on_call callback failed for %s", record.endpoint)

    # --- publishing ------------------------------------------------------------------------

    async def create_container(self, ig_user_id: str, token: str, params: Mapping[str, str]) -> str:
        """POST /{ig-user-id}/media (form body: captions stay out of URLs) → container id."""
        body, _ = await self.request(
            "POST",
            f"{_seg(ig_user_id)}/media",
            token,
            data=params,
            endpoint_name=CREATE_CONTAINER,
            require=("id",),
        )
        return str(body["id"])

    async def start_resumable(
        self, ig_user_id: str, token: str, params: Mapping[str, str]
    ) -> tuple[str, str]:
        """Create a container for a resumable upload → (container id, upload uri)."""
        body, _ = await self.request(
            "POST",
            f"{_seg(ig_user_id)}/media",
            token,
            data={**params, "upload_type": "resumable"},
            endpoint_name=CREATE_CONTAINER,
            require=("id", "uri"),
        )
        return str(body["id"]), str(body["uri"])

    async def upload_file(self, uri: str, token: str, path: Path) -> None:
        """Send a local file to the uri `start_resumable` returned (OSError if unreadable)."""
        size = path.stat().st_size
        await self._send(
            "POST",
            uri,
            token=token,
            endpoint="POST {upload-uri}",
            auth_scheme="OAuth",
            content=_file_chunks(path, size),
            headers={
                "offset": "0",
                "file_size": str(size),
                # An explicit length keeps httpx from sending the stream chunked.
                "Content-Length": str(size),
                "Content-Type": "application/octet-stream",
            },
            upload=True,
        )

    async def upload_from_url(self, uri: str, token: str, file_url: str) -> None:
        """Resumable-upload variant where Meta fetches the file from `file_url`."""
        await self._send(
            "POST",
            uri,
            token=token,
            endpoint="POST {upload-uri}",
            auth_scheme="OAuth",
            headers={"file_url": file_url},
            upload=True,
        )

    async def container_status(self, container_id: str, token: str) -> ContainerStatus:
        body, _ = await self.request(
            "GET",
            _seg(container_id),
            token,
            params={"fields": "id,status_code,status"},
            endpoint_name="GET /{container-id}",
            require=("status_code",),
        )
        status = body.get("status")
        return ContainerStatus(
            id=str(body.get("id") or container_id),
            status_code=str(body["status_code"]),
            status=str(status) if status is not None else None,
        )

    async def publish(self, ig_user_id: str, token: str, creation_id: str) -> str:
        """POST /{ig-user-id}/media_publish → media id. Never retried here (at most once)."""
        body, _ = await self.request(
            "POST",
            f"{_seg(ig_user_id)}/media_publish",
            token,
            data={"creation_id": creation_id},
            endpoint_name="POST /{ig-user-id}/media_publish",
            require=("id",),
        )
        return str(body["id"])

    async def publishing_limit(
        self, ig_user_id: str, token: str, since: int | None = None
    ) -> PublishingLimit:
        params = {"fields": "quota_usage,config"}
        if since is not None:
            params["since"] = str(since)
        endpoint = "GET /{ig-user-id}/content_publishing_limit"
        body, usage = await self.request(
            "GET",
            f"{_seg(ig_user_id)}/content_publishing_limit",
            token,
            params=params,
            endpoint_name=endpoint,
            require=("data",),
        )
        data = body["data"]
        entry = data[0] if isinstance(data, list) and data and isinstance(data[0], dict) else None
        config = entry.get("config") if entry else None
        if not entry or not isinstance(config, dict) or "quota_total" not in config:
            raise GraphUnavailable(
                "bad_answer",
                f"{endpoint}: answer lacks quota figures",
                usage=usage,
                endpoint=endpoint,
            )
        return PublishingLimit(
            quota_usage=_as_int(entry.get("quota_usage")),
            quota_total=_as_int(config.get("quota_total")),
            quota_duration=_as_int(config.get("quota_duration"), 86400),
        )

    async def refresh_token(self, token: str) -> RefreshedToken:
        """GET /refresh_access_token (Instagram Login): a new long-lived token for `token`.

        Unversioned, as Meta documents it. The token goes in the Authorization header like
        every other call, never into the URL.
        """
        body, _ = await self._send(
            "GET",
            f"{self.base_url}/refresh_access_token",
            token=token,
            endpoint="GET /refresh_access_token",
            params={"grant_type": "ig_refresh_token"},
            require=("access_token",),
        )
        expires_in = _as_int(body.get("expires_in"), -1)
        return RefreshedToken(str(body["access_token"]), expires_in if expires_in > 0 else None)

    # --- reads -----------------------------------------------------------------------------

    async def me(self, token: str, fields: Sequence[str] = ("id", "username")) -> dict[str, Any]:
        body, _ = await self.request(
            "GET", "me", token, params={"fields": ",".join(fields)}, endpoint_name=TOKEN_CHECK
        )
        return body

    async def user(
        self, ig_user_id: str, token: str, fields: Sequence[str] = ("id", "username")
    ) -> dict[str, Any]:
        body, _ = await self.request(
            "GET",
            _seg(ig_user_id),
            token,
            params={"fields": ",".join(fields)},
            endpoint_name="GET /{ig-user-id}",
        )
        return body

    async def media_info(
        self, media_id: str, token: str, fields: Sequence[str] = MEDIA_FIELDS
    ) -> dict[str, Any]:
        body, _ = await self.request(
            "GET",
            _seg(media_id),
            token,
            params={"fields": ",".join(fields)},
            endpoint_name="GET /{media-id}",
        )
        return body

    async def recent_media(
        self, ig_user_id: str, token: str, limit: int = 25, fields: Sequence[str] = MEDIA_FIELDS
    ) -> list[dict[str, Any]]:
        """The account's newest media, first page only (newest first)."""
        body, _ = await self.request(
            "GET",
            f"{_seg(ig_user_id)}/media",
            token,
            params={"fields": ",".join(fields), "limit": str(limit)},
            endpoint_name="GET /{ig-user-id}/media",
            require=("data",),
        )
        return (
            [m for m in body["data"] if isinstance(m, dict)]
            if isinstance(body["data"], list)
            else []
        )

    async def media_back_to(
        self,
        ig_user_id: str,
        token: str,
        oldest: datetime,
        *,
        fields: Sequence[str] = ("id", "caption", "timestamp"),
        stories: bool = False,
        page_size: int = MEDIA_PAGE_SIZE,
    ) -> AsyncIterator[dict[str, Any]]:
        """The account's media, newest first, paged back in time as far as `oldest`.

        Follows the `after` cursor page after page and stops at the first item published
        before `oldest` (not yielded), or when `paging.next` is missing. A burst of any size
        is covered, not just the newest page. An item whose `timestamp` cannot be read is
        yielded (the caller judges it) and does not stop the walk. `stories=True` lists
        `/stories` (the last 24 h) instead of feed and reels. Stopping early is fine: every
        page is one call, fetched only when the caller asks for more.
        """
        bound = oldest if oldest.tzinfo else oldest.replace(tzinfo=UTC)
        wanted = tuple(dict.fromkeys((*fields, "timestamp")))  # the bound needs the time
        edge = "stories" if stories else "media"
        after: str | None = None
        seen: set[str] = set()
        while True:
            params = {"fields": ",".join(wanted), "limit": str(page_size)}
            if after:
                params["after"] = after
            body, _ = await self.request(
                "GET",
                f"{_seg(ig_user_id)}/{edge}",
                token,
                params=params,
                endpoint_name=f"GET /{{ig-user-id}}/{edge}",
                require=("data",),
            )
            page = body["data"] if isinstance(body["data"], list) else []
            for item in page:
                if not isinstance(item, dict):
                    continue
                when = graph_time(item.get("timestamp"))
                if when is not None and when < bound:
                    return
                yield item
            paging = body.get("paging") if isinstance(body.get("paging"), dict) else {}
            if not paging or not paging.get("next"):
                return
            after = _after_cursor(paging)
            if not after or after in seen:
                log.warning("media paging of an account stopped: no new cursor")
                return
            seen.add(after)

    async def stories(
        self, ig_user_id: str, token: str, limit: int = 25, fields: Sequence[str] = ("id", "timestamp")
    ) -> list[dict[str, Any]]:
        """The account's live stories, first page only (stories are not listed on /media)."""
        body, _ = await self.request(
            "GET",
            f"{_seg(ig_user_id)}/stories",
            token,
            params={"fields": ",".join(fields), "limit": str(limit)},
            endpoint_name="GET /{ig-user-id}/stories",
            require=("data",),
        )
        data = body["data"]
        return [m for m in data if isinstance(m, dict)] if isinstance(data, list) else []

    # --- comments --------------------------------------------------------------------------

    async def comments(
        self,
        media_id: str,
        token: str,
        fields: Sequence[str] = COMMENT_FIELDS,
        page_size: int = 50,
        max_items: int | None = None,
    ) -> list[dict[str, Any]]:
        """Top-level comments, following the `after` cursor until `paging.next` is missing.

        A short page is not the end. We never follow `paging.next` itself: Meta puts the access
        token into that URL. Cursors live only for this loop.
        """
        items: list[dict[str, Any]] = []
        after: str | None = None
        seen: set[str] = set()
        while True:
            params = {"fields": ",".join(fields), "limit": str(page_size)}
            if after:
                params["after"] = after
            body, _ = await self.request(
                "GET",
                f"{_seg(media_id)}/comments",
                token,
                params=params,
                endpoint_name="GET /{media-id}/comments",
                require=("data",),
            )
            page = body["data"]
            if isinstance(page, list):
                items.extend(c for c in page if isinstance(c, dict))
            if max_items is not None and len(items) >= max_items:
                return items[:max_items]
            paging = body.get("paging") if isinstance(body.get("paging"), dict) else {}
            if not paging or not paging.get("next"):
                return items
            after = _after_cursor(paging)
            if not after or after in seen:
                log.warning("comments paging of a media object stopped: no new cursor")
                return items
            seen.add(after)

    async def post_comment(self, media_id: str, token: str, message: str) -> str:
        body, _ = await self.request(
            "POST",
            f"{_seg(media_id)}/comments",
            token,
            data={"message": message},
            endpoint_name="POST /{media-id}/comments",
            require=("id",),
        )
        return str(body["id"])


def graph_time(value: Any) -> datetime | None:
    """A Graph timestamp (`2026-11-30T09:00:00+0000`) as an aware UTC datetime, or None."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return when.astimezone(UTC) if when.tzinfo else when.replace(tzinfo=UTC)


def _after_cursor(paging: Mapping[str, Any]) -> str | None:
    cursors = paging.get("cursors")
    if isinstance(cursors, dict) and isinstance(cursors.get("after"), str) and cursors["after"]:
        return str(cursors["after"])
    # Fall back to the cursor inside the `next` URL (taking only `after`, never the token).
    nxt = paging.get("next")
    if isinstance(nxt, str):
        values = parse_qs(urlsplit(nxt).query).get("after")
        if values and values[0]:
            return values[0]
    return None
