"""The webhook receiver served from a background thread's event loop, with an in-memory sink,
for tests and the benchmark (the daemon serves it from its own loop)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Sequence
from types import TracebackType

from scheduler.engage.events import WebhookEvent
from scheduler.engage.receiver import ReceiverConfig, Sink, WebhookReceiver

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
