"""Run one daemon in this process for a while and count the database statements it sends.

`python -m bench.idle_probe CONFIG SECONDS` prints {"queries", "queries_per_min", "steps", "statements"}
for the window after a start-up of min(10 s, SECONDS / 3) (migrations and the account sync
are not idling). The bench measures CPU and memory from outside.
"""

from __future__ import annotations

import asyncio
import collections
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from scheduler.config import load_settings
from scheduler.daemon import Daemon
from scheduler.store import Store


def main() -> None:
    config, seconds = Path(sys.argv[1]), float(sys.argv[2])
    settings = load_settings(config)
    store = Store(settings.database.url)
    count = [0]
    kinds: collections.Counter[str] = collections.Counter()
    counting = [False]

    @sa.event.listens_for(store.engine, "before_cursor_execute")
    def _count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        count[0] += 1
        if counting[0]:
            kinds[_kind(statement)] += 1

    daemon = Daemon(settings, store)
    warmup = min(10.0, seconds / 3)
    window: dict[str, float] = {}

    async def go() -> None:
        async def stopper() -> None:
            await asyncio.sleep(warmup)
            window["q0"], window["t0"] = count[0], time.monotonic()
            counting[0] = True
            await asyncio.sleep(seconds - warmup)
            window["q1"], window["t1"] = count[0], time.monotonic()
            counting[0] = False
            daemon.stop()

        task = asyncio.create_task(stopper())
        await daemon.run()
        await task

    asyncio.run(go())
    minutes = (window["t1"] - window["t0"]) / 60
    queries = int(window["q1"] - window["q0"])
    print(json.dumps({"queries": queries, "queries_per_min": round(queries / minutes, 1),
                      "steps": daemon.steps_done, "statements": dict(kinds.most_common(12))}))


def _kind(statement: str) -> str:
    """A statement's verb and first table: what the idle daemon keeps asking."""
    words = statement.split()
    verb = words[0].upper() if words else "?"
    table = re.search(r"\b(?:FROM|INTO|UPDATE)\s+([\w.\"]+)", statement, re.IGNORECASE)
    return f"{verb} {table.group(1).strip(chr(34)) if table else ''}".strip()


if __name__ == "__main__":
    main()
