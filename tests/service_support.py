"""Shared pieces of the "running it for months" tests: one configuration as a Settings object
and as the config.yaml the CLI reads, the CLI run in-process, a daemon run as a task beside
the test's own coroutines."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from scheduler.cli import main
from scheduler.config import Settings, settings_from_dict
from scheduler.daemon import Daemon
from tests.kinds_support import SHOP_ID


@pytest.fixture(autouse=True)
def close_connections() -> Iterator[None]:
    """These tests open several stores per test: their pooled connections are closed when the
    test ends, not whenever the collector gets round to it (the PostgreSQL server is shared)."""
    yield
    gc.collect()


SHOP = {"name": "shop", "ig_user_id": SHOP_ID, "token_env": "IGSCHED_TEST_TOKEN_SHOP"}


def service_config(db_url: str, base_url: str, **extra: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "database": {"url": db_url},
        "graph": {"base_url": base_url, "timeout_s": 5},
        "accounts": [SHOP],
        "daemon": {"identity": "first", "tick_s": 1, "lease_s": 5},
        "staging": {"lead_s": {"image": 3, "story": 3, "reel": 5, "carousel": 5}, "poll_min_s": 0.2},
        "retries": {"base_s": 0.2, "cap_s": 2},
    }
    for k, v in extra.items():
        cfg[k] = {**cfg[k], **v} if isinstance(v, dict) and isinstance(cfg.get(k), dict) else v
    return cfg


def settings_of(cfg: dict[str, Any], **daemon: Any) -> Settings:
    return settings_from_dict({**cfg, "daemon": {**cfg["daemon"], **daemon}}, "test settings")


def write_config(tmp: Path, cfg: dict[str, Any]) -> Path:
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def cli(config: Path, *args: str) -> tuple[int, str, str]:
    r = CliRunner().invoke(main, ["--config", str(config), *args], catch_exceptions=False)
    return r.exit_code, r.stdout, r.stderr


async def run_beside(daemons: list[Daemon], test: Callable[[], Awaitable[None]],
                     timeout_s: float = 30.0) -> None:
    """Run the daemons as tasks while `test` runs; then stop them as SIGTERM would."""
    tasks = [asyncio.create_task(d.run()) for d in daemons]
    try:
        await asyncio.wait_for(test(), timeout_s)
    finally:
        for d in daemons:
            d.stop()
        await asyncio.wait_for(asyncio.gather(*tasks), 30)


async def wait_for(check: Callable[[], bool], timeout_s: float = 20.0, every_s: float = 0.05) -> None:
    """Until `check()` (run in a thread: it may read the database) is true."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not await asyncio.to_thread(check):
        if loop.time() > deadline:
            raise TimeoutError("the condition did not come true in time")
        await asyncio.sleep(every_s)
