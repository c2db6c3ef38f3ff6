"""httpx's interface on aiohttp's connection pool: the Graph client's transport.

Why: httpx's own pool (httpcore) costs about 1.6 ms of CPU per request here, aiohttp's about
0.14 ms (3,000 requests to the fake Graph API, README "Development"); in a burst of 1,000
publishes the HTTP client was the daemon's largest cost. The Graph client keeps speaking
httpx (requests, responses, exceptions); only the bytes travel through aiohttp.

The exceptions are mapped for exactly-once, which a generic mapping gets wrong: only a
failure *before* the request left (no connection, connect timeout, a bad URL) becomes a
connect-type error, which the client treats as "nothing was sent"; a connection dropped or a
read timed out after sending becomes a read/protocol error: the request may have taken
effect (GraphUnavailable "connection"/"timeout", AMBIGUOUS).

`exchange` is the Graph client's own path for an ordinary call (query, form or JSON body, a
small answer): no httpx request and response are built around it. Building them, merging the
URL and wrapping the answer cost more CPU than aiohttp's whole exchange (a profile of the
1,000-post burst: about a sixth of the daemon's CPU). It encodes exactly as httpx does.
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import aiohttp
import httpx
import yarl

from scheduler.tls import tls_context

# (aiohttp exception, httpx exception), most specific first: the first match wins
_BEFORE_SENDING: tuple[tuple[type[BaseException], type[httpx.RequestError]], ...] = (
    (aiohttp.ClientProxyConnectionError, httpx.ProxyError),
    (aiohttp.ClientConnectorError, httpx.ConnectError),  # DNS, refused, TLS handshake
    (aiohttp.ConnectionTimeoutError, httpx.ConnectTimeout),  # no connection in time
    (aiohttp.InvalidURL, httpx.UnsupportedProtocol),
    (aiohttp.NonHttpUrlClientError, httpx.UnsupportedProtocol),
)
_AFTER_SENDING: tuple[tuple[type[BaseException], type[httpx.RequestError]], ...] = (
    (aiohttp.SocketTimeoutError, httpx.ReadTimeout),
    (aiohttp.ServerTimeoutError, httpx.ReadTimeout),
    (asyncio.TimeoutError, httpx.ReadTimeout),
    (aiohttp.ClientPayloadError, httpx.ReadError),
    (aiohttp.ServerDisconnectedError, httpx.RemoteProtocolError),
    (aiohttp.ClientError, httpx.ReadError),  # anything else: it may have been sent
    (OSError, httpx.ReadError),
)


@dataclass(frozen=True, slots=True)
class Answer:
    """An HTTP answer, read whole: what the Graph client looks at."""

    status: int
    reason: str
    headers: Mapping[str, str]  # case-insensitive
    body: bytes


def _plain(value: Any) -> str:
    # httpx's primitive_value_to_str: JSON-style booleans, None as empty
    return "true" if value is True else "false" if value is False else "" if value is None else str(value)


def encode_pairs(items: Mapping[str, Any]) -> str:
    """A query string or form body as httpx encodes it (lists repeat the key)."""
    pairs: list[tuple[str, str]] = []
    for key, value in items.items():
        if isinstance(value, list | tuple):
            pairs.extend((key, _plain(v)) for v in value)
        else:
            pairs.append((key, _plain(value)))
    return urlencode(pairs)


def map_error(exc: BaseException, request: httpx.Request | None) -> httpx.RequestError | None:
    """The httpx exception for an aiohttp failure (None: not a transport failure)."""
    for source, target in (*_BEFORE_SENDING, *_AFTER_SENDING):
        if isinstance(exc, source):
            return target(str(exc) or type(exc).__name__, request=request)
    return None


class AiohttpTransport(httpx.AsyncBaseTransport):
    """One aiohttp session (one pool of `max_connections`), made on first use inside the
    running event loop. Redirects are never followed here (the client decides)."""

    def __init__(self, max_connections: int) -> None:
        self._limit = max_connections
        self._session: aiohttp.ClientSession | None = None
        # HTTP(S)_PROXY / NO_PROXY, read once: aiohttp's trust_env reads the whole environment
        # on every request, which was a fifth of the daemon's CPU in a burst
        self._env_proxies = urllib.request.getproxies()
        self._proxy_of: dict[tuple[str, str], str | None] = {}

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self._limit, limit_per_host=0, ssl=tls_context())
            self._session = aiohttp.ClientSession(
                connector=connector, trust_env=False, auto_decompress=True,
                timeout=aiohttp.ClientTimeout(total=None),
            )
        return self._session

    def _proxy(self, url: httpx.URL) -> str | None:
        return self._proxy_for(url.scheme, url.host)

    def _proxy_for(self, scheme: str, host: str) -> str | None:
        """The proxy the environment names for this scheme and host (None: direct)."""
        key = (scheme, host)
        if key not in self._proxy_of:
            proxy = self._env_proxies.get(scheme)
            self._proxy_of[key] = None if proxy is None or urllib.request.proxy_bypass(host) else proxy
        return self._proxy_of[key]

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeout: dict[str, Any] = request.extensions.get("timeout", {})
        data: Any
        try:
            data = request.content or None
        except httpx.RequestNotRead:  # a streamed upload (resumable video upload)
            data = request.stream
        # aiohttp frames the body and negotiates compression (what it can decode) itself
        headers = {k: v for k, v in request.headers.items()
                   if k.lower() not in ("transfer-encoding", "accept-encoding")}
        try:
            async with self._get_session().request(
                request.method, yarl.URL(str(request.url), encoded=True), headers=headers, data=data, allow_redirects=False,
                proxy=self._proxy(request.url),
                timeout=aiohttp.ClientTimeout(
                    total=None, connect=timeout.get("pool"), sock_connect=timeout.get("connect"),
                    sock_read=timeout.get("read"),
                ),
            ) as response:
                body = await response.read()  # Graph answers are small JSON
                status, raw_headers, reason = response.status, response.raw_headers, response.reason
        except Exception as exc:
            mapped = map_error(exc, request)
            if mapped is None:
                raise
            raise mapped from exc
        # the body is already decoded (gzip): drop the header that would make httpx decode again
        kept = [(k, v) for k, v in raw_headers if k.lower() not in (b"content-encoding", b"transfer-encoding")]
        return httpx.Response(status, headers=kept, content=body, request=request,
                              extensions={"http_version": b"HTTP/1.1",
                                          "reason_phrase": (reason or "").encode()})

    async def exchange(self, method: str, url: str, *, params: Mapping[str, Any] | None,
                       data: Mapping[str, Any] | None, json_body: Mapping[str, Any] | None,
                       headers: Mapping[str, str], timeout: httpx.Timeout) -> Answer:
        """One call without httpx's request and response objects; failures raise the same
        httpx exceptions as handle_async_request. `url` has no query of its own."""
        query = encode_pairs(params) if params else ""
        full = yarl.URL(f"{url}?{query}" if query else url, encoded=True)
        sent = dict(headers)
        body: bytes | None = None
        if json_body is not None:
            body = json.dumps(json_body, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()
            sent["Content-Type"] = "application/json"
        elif data:
            body = encode_pairs(data).encode()
            sent["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            async with self._get_session().request(
                method, full, headers=sent, data=body, allow_redirects=False,
                proxy=self._proxy_for(full.scheme, full.host or ""),
                timeout=aiohttp.ClientTimeout(total=None, connect=timeout.pool, sock_connect=timeout.connect,
                                              sock_read=timeout.read),
            ) as response:
                return Answer(response.status, response.reason or "", response.headers, await response.read())
        except Exception as exc:
            mapped = map_error(exc, None)
            if mapped is None:
                raise
            raise mapped from exc

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
