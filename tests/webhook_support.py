"""The webhook receiver served from a background thread's event loop, with an in-memory sink,
for tests and the benchmark (the daemon serves it from its own loop)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from types import TracebackType

from aiohttp import web

from scheduler.config import Settings
from scheduler.daemon import Daemon
from scheduler.engage.events import WebhookEvent
from scheduler.engage.receiver import ReceiverConfig, Sink, WebhookReceiver
from scheduler.store import Store

PATH = "/webhooks/instagram"
SECRET = "test-app-secret"
VERIFY = "test-verify-token"


class MemorySink:
    """Keeps every batch handed over; `fail_next` makes the next call raise."""

    def __init__(self) -> None:
        self.batches: list[list[WebhookEvent]] = []
        self.fail_next = False
        self._lock = threading.Lock()

    async def __call__(self, events: Sequence[WebhookEvent]) -> None:
        with self._lock:
            if self.fail_next:
                self.fail_next = False
                raise RuntimeError("the database is away")
            self.batches.append(list(events))

    @property
    def events(self) -> list[WebhookEvent]:
        with self._lock:
            return [e for batch in self.batches for e in batch]


class RunningReceiver:
    def __init__(self, sink: Sink | None = None, *, config: ReceiverConfig | None = None) -> None:
        self.sink = sink if sink is not None else MemorySink()
        self.receiver = WebhookReceiver(config or ReceiverConfig(PATH, VERIFY, SECRET), self.sink)
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> RunningReceiver:
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            try:
                host, port = self._loop.run_until_complete(self.receiver.start("127.0.0.1", 0))
                self.url = f"http://{host}:{port}{self.receiver.config.path}"
            except BaseException as e:
                failure.append(e)
                ready.set()
                return
            ready.set()
            self._loop.run_forever()
            self._loop.run_until_complete(self.receiver.stop())
            _cancel_leftovers(self._loop)
            self._loop.close()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        ready.wait(10)
        if failure:
            raise failure[0]
        return self

    def call(self, fn: Callable[[], Awaitable[object]]) -> object:
        return asyncio.run_coroutine_threadsafe(fn(), self._loop).result(10)  # type: ignore[arg-type]

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)


class RelayTarget:
    """A local HTTP service that records what is POSTed to it (a stand-in for n8n).
    `answers` is a list of statuses to give, one per request (then 200); `delay_s` slows
    every answer down."""

    def __init__(self, port: int = 0) -> None:
        self.port = port
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.answers: list[int] = []
        self.delay_s = 0.0
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._thread: threading.Thread | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        status = self.answers.pop(0) if self.answers else 200
        self.received.append((dict(request.headers), body))
        if status in (301, 302, 307, 308):
            return web.Response(status=status, headers={"Location": "http://127.0.0.1:9/"})
        return web.Response(status=status, text="recorded")

    def __enter__(self) -> RelayTarget:
        app = web.Application()
        app.router.add_post("/hook/{tail:.*}", self._handle)
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.2)
            self._loop.run_until_complete(runner.setup())
            site = web.TCPSite(runner, "127.0.0.1", self.port)
            self._loop.run_until_complete(site.start())
            self.url = f"http://127.0.0.1:{runner.addresses[0][1]}/hook/abc"
            ready.set()
            self._loop.run_forever()
            self._loop.run_until_complete(runner.cleanup())
            _cancel_leftovers(self._loop)
            self._loop.close()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)


def _cancel_leftovers(loop: asyncio.AbstractEventLoop) -> None:
    pending = asyncio.all_tasks(loop)
    for task in pending:
        task.cancel()
    if pending:
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))


class DaemonThread:
    """`igsched run` in a background thread's event loop (its receiver on a free port), so
    a test can talk to it over HTTP while it runs; stopped as SIGTERM would."""

    def __init__(self, settings: Settings, store: Store) -> None:
        self.daemon = Daemon(settings, store)
        self._loop = asyncio.new_event_loop()
        self._thread: threading.Thread | None = None
        self.failure: BaseException | None = None

    @property
    def url(self) -> str:
        address = self.daemon.webhooks.intake.address
        assert address is not None, "the daemon serves no receiver"
        return f"http://{address[0]}:{address[1]}{self.daemon.settings.webhooks.path}"

    def __enter__(self) -> DaemonThread:
        def run() -> None:
            asyncio.set_event_loop(self._loop)
            try:
                self._loop.run_until_complete(self.daemon.run())
            except BaseException as e:  # the test says so when it stops the daemon
                self.failure = e
            finally:
                _cancel_leftovers(self._loop)
                self._loop.close()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while self.daemon.webhooks.intake.address is None and self.daemon.settings.webhooks.listen:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"the daemon's receiver did not start ({self.failure!r})")
            time.sleep(0.02)
        return self

    def wait_for(self, done: Callable[[], bool], timeout_s: float = 20.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not done():
            if time.monotonic() > deadline:
                raise TimeoutError("the daemon did not get there in time")
            time.sleep(0.05)

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._loop.call_soon_threadsafe(self.daemon.stop)
        if self._thread is not None:
            self._thread.join(30)
        if self.failure is not None and et is None:
            raise self.failure
