"""The webhook receiver: an aiohttp app that checks Meta's signature over the raw bytes and
hands the normalised events to a sink (the store, in the daemon). Nothing else happens on
the request path: rules and forwarding run later from what the sink stored, so Meta gets
its 200 quickly and only once the events are safe.

    receiver = WebhookReceiver(ReceiverConfig(path, verify_token, app_secret), sink)
    host, port = await receiver.start("127.0.0.1", 8788)   # in the daemon's event loop
    ...
    await receiver.stop()
"""

from __future__ import annotations

import logging
import re
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from aiohttp import web

from scheduler.config import WebhookSettings
from scheduler.engage.events import Normalised, PayloadRefused, WebhookEvent, normalise, parse_body
from scheduler.engage.webhook_auth import SIGNATURE_HEADER, SignatureRefused, tokens_equal, verify

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024
_CHALLENGE_RE = re.compile(r"[A-Za-z0-9._~-]{1,256}")
_LOGGED_SOURCES_MAX = 4096  # refusals are logged once per source address; older ones forgotten
SHUTDOWN_TIMEOUT_S = 2.0

Sink = Callable[[Sequence[WebhookEvent]], Awaitable[None]]


@dataclass(frozen=True)
class ReceiverConfig:
    path: str
    verify_token: str
    app_secret: str
    max_body_bytes: int = MAX_BODY_BYTES

    def __repr__(self) -> str:  # never the secrets
        return f"ReceiverConfig(path={self.path!r}, max_body_bytes={self.max_body_bytes})"


@dataclass
class ReceiverStats:
    """Counters for status and metrics."""

    accepted_bodies: int = 0
    events: int = 0
    skipped_items: int = 0
    refused: dict[str, int] = field(default_factory=dict)  # by HTTP status, e.g. "403"
    by_kind: dict[str, int] = field(default_factory=dict)  # events accepted, by kind

    def refuse(self, status: int) -> None:
        self.refused[str(status)] = self.refused.get(str(status), 0) + 1


class _BodyTooLarge(Exception):
    pass


class WebhookReceiver:
    def __init__(self, config: ReceiverConfig, sink: Sink) -> None:
        self.config = config
        self.sink = sink
        self.stats = ReceiverStats()
        self._logged: OrderedDict[str, None] = OrderedDict()
        self._runner: web.AppRunner | None = None

    # ------------------------------------------------------------------ serving
    def app(self) -> web.Application:
        # client_max_size guards aiohttp's own readers too; this module reads the body itself
        app = web.Application(client_max_size=self.config.max_body_bytes)
        app.router.add_get(self.config.path, self.handshake)
        app.router.add_post(self.config.path, self.notification)
        return app

    async def start(self, host: str, port: int) -> tuple[str, int]:
        """Serve in the running event loop; returns the bound address (port 0: a free one)."""
        if self._runner is not None:
            raise RuntimeError("the webhook receiver is already running")
        # lingering_time=0: after a refusal, the unread rest of a body is not drained (aiohttp
        # would read and drop it for up to 10 s); the connection is closed instead
        runner = web.AppRunner(self.app(), access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT_S,
                               lingering_time=0)
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        bound = runner.addresses[0]
        log.info("webhook receiver listening on %s:%s%s", bound[0], bound[1], self.config.path)
        return str(bound[0]), int(bound[1])

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    # ------------------------------------------------------------------ handlers
    async def handshake(self, request: web.Request) -> web.Response:
        """Meta's subscription check: echo hub.challenge when hub.verify_token matches."""
        q = request.query
        token = q.get("hub.verify_token", "")
        if q.get("hub.mode") != "subscribe" or not tokens_equal(token, self.config.verify_token):
            self._refused(request, 403, "verification handshake with a wrong token or mode")
            return web.Response(status=403, text="forbidden\n")
        challenge = q.get("hub.challenge", "")
        if not _CHALLENGE_RE.fullmatch(challenge):
            return web.Response(status=400, text="hub.challenge missing or not plain\n")
        return web.Response(text=challenge, content_type="text/plain")

    async def notification(self, request: web.Request) -> web.Response:
        length = request.content_length
        if length is not None and length > self.config.max_body_bytes:
            self._refused(request, 413, f"body of {length} bytes")
            return _close(web.Response(status=413, text="body too large\n"))
        header = request.headers.get(SIGNATURE_HEADER)
        if header is None:
            self._refused(request, 403, "no signature header")
            return _close(web.Response(status=403, text="forbidden\n"))
        try:
            raw = await self._read(request)
        except _BodyTooLarge:
            self._refused(request, 413, f"body over {self.config.max_body_bytes} bytes")
            return _close(web.Response(status=413, text="body too large\n"))
        try:
            verify(self.config.app_secret, raw, header)
        except SignatureRefused as e:
            self._refused(request, 403, e.reason)
            return web.Response(status=403, text="forbidden\n")
        try:
            batch = normalise(parse_body(raw))
        except PayloadRefused as e:
            self._refused(request, 400, str(e))
            return web.Response(status=400, text=f"{e}\n")
        self._note_skipped(batch)
        if batch.events:
            try:
                await self.sink(batch.events)
            except Exception:
                # Meta retries a non-2xx answer, so nothing is lost by refusing here
                log.exception("webhook events could not be stored; Meta will retry")
                self.stats.refuse(500)
                return web.Response(status=500, text="not stored, retry\n")
        self.stats.accepted_bodies += 1
        self.stats.events += len(batch.events)
        for event in batch.events:
            self.stats.by_kind[event.kind] = self.stats.by_kind.get(event.kind, 0) + 1
        return web.Response(text="ok\n")

    async def _read(self, request: web.Request) -> bytes:
        """The body, stopping as soon as it passes the limit (chunked bodies have no length)."""
        chunks: list[bytes] = []
        size = 0
        limit = self.config.max_body_bytes
        while True:
            chunk = await request.content.readany()
            if not chunk:
                return b"".join(chunks)
            size += len(chunk)
            if size > limit:
                raise _BodyTooLarge
            chunks.append(chunk)

    # ------------------------------------------------------------------ logging
    def _refused(self, request: web.Request, status: int, reason: str) -> None:
        """Count every refusal; log the first one from each source address, so a scanner or
        a misconfigured sender cannot flood the log."""
        self.stats.refuse(status)
        source = request.remote or "unknown"
        if source in self._logged:
            self._logged.move_to_end(source)
            log.debug("webhook from %s refused (%d): %s", source, status, reason)
            return
        self._logged[source] = None
        if len(self._logged) > _LOGGED_SOURCES_MAX:
            self._logged.popitem(last=False)
        log.warning("webhook from %s refused (%d): %s; further refusals from this address "
                    "are counted, not logged", source, status, reason)

    def _note_skipped(self, batch: Normalised) -> None:
        self.stats.skipped_items += len(batch.skipped)
        for item in batch.skipped:
            log.info("webhook item %s skipped: %s", item.where, item.reason)


def _close(response: web.Response) -> web.Response:
    # the unread rest of the body is not worth draining: close the connection instead
    response.force_close()
    return response


def receiver_from_settings(settings: WebhookSettings, sink: Sink) -> WebhookReceiver:
    """A receiver with the configured path and secrets (read now; `SecretMissing` names the
    source when one is empty)."""
    config = ReceiverConfig(settings.path, settings.verify_token(), settings.app_secret())
    return WebhookReceiver(config, sink)
