"""Running the emulator: in a background thread (tests, demo, bench) or blocking (the CLI)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import threading
from collections.abc import Callable
from types import TracebackType

from aiohttp import web

from .app import build_app
from .state import EmulatorState

STARTUP_TIMEOUT_S = 10.0
SHUTDOWN_TIMEOUT_S = 1.0  # in-flight requests get this long when the server stops


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


async def _start_site(state: EmulatorState, host: str, port: int) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(build_app(state), access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT_S)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    bound = runner.addresses[0][1]
    return runner, int(bound)


class RunningEmulator:
    """The emulator served from a background thread with its own event loop.

    `with RunningEmulator() as emu:` binds a free port (port=0) and exposes `emu.base_url`,
    `emu.port` and `emu.state`. After `stop()`, `start()` serves again on the same port, so a
    test can restart the "API" under a running client.
    """

    def __init__(
        self, state: EmulatorState | None = None, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.state = state if state is not None else EmulatorState()
        self.host = host
        self.port = port
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def base_url(self) -> str:
        if self._thread is None:
            raise RuntimeError("the emulator is not running")
        return _url(self.host, self.port)

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self) -> RunningEmulator:
        if self._thread is not None:
            return self
        ready = threading.Event()
        failure: list[BaseException] = []
        loop = asyncio.new_event_loop()

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                runner, self.port = loop.run_until_complete(
                    _start_site(self.state, self.host, self.port)
                )
            except BaseException as e:
                failure.append(e)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(runner.cleanup())
                _cancel_leftovers(loop)
                loop.close()

        thread = threading.Thread(target=run, name=f"igsched-emulator-{id(self):x}", daemon=True)
        thread.start()
        if not ready.wait(STARTUP_TIMEOUT_S):
            raise RuntimeError("the emulator did not start in time")
        if failure:
            thread.join()
            raise failure[0]
        self._thread, self._loop = thread, loop
        return self

    def stop(self) -> None:
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=STARTUP_TIMEOUT_S)
        self._thread = self._loop = None

    def __enter__(self) -> RunningEmulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _cancel_leftovers(loop: asyncio.AbstractEventLoop) -> None:
    pending = asyncio.all_tasks(loop)
    for task in pending:
        task.cancel()
    if pending:
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    loop.run_until_complete(loop.shutdown_asyncgens())


def serve(
    host: str,
    port: int,
    state: EmulatorState | None = None,
    *,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve until SIGINT or SIGTERM (for `igsched emulator --port N`).

    `on_ready` receives the base URL once listening; by default it is printed to stderr.
    """
    emulator_state = state if state is not None else EmulatorState()

    def announce(url: str) -> None:
        print(f"igsched emulator: fake Graph API listening on {url}", file=sys.stderr, flush=True)

    async def main() -> None:
        runner, bound = await _start_site(emulator_state, host, port)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        installed: list[signal.Signals] = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            # NotImplementedError: asyncio has no signal handlers on this platform (Windows)
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, stop.set)
                installed.append(sig)
        (on_ready or announce)(_url(host, bound))
        try:
            await stop.wait()
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)
            await runner.cleanup()

    asyncio.run(main())
