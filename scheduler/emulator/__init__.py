"""A fake Instagram Graph API served over real HTTP, for the demo, tests and benchmarks.

It speaks the real paths and shapes (`{base_url}/{v}/{ig-user-id}/media`, ...), so a client
switches to Meta by changing only its base URL. Behaviour switches live on `EmulatorState`
(processing times, media rules, random faults, one-shot injections, quotas, usage budgets,
clock) and are also reachable over HTTP under `/_emulator/` for tests in another process.

    with RunningEmulator() as emu:
        emu.state.add_account("17841400000000001", username="shop", token="t0k")
        httpx.post(f"{emu.base_url}/v23.0/17841400000000001/media", ...)
"""

from .app import build_app
from .errors import GraphError
from .runner import RunningEmulator, serve
from .state import EmulatorState

__all__ = ["EmulatorState", "GraphError", "RunningEmulator", "build_app", "serve"]
