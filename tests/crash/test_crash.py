"""Crash safety with real processes: `kill -9` at random moments, on SQLite and PostgreSQL.

The daemon runs as `python -m scheduler run` against the fake Graph API served by the test
process. It is killed with SIGKILL again and again while 50 posts come due (twice an
identity: a restart under the same identity takes its leases back at once; the other
identity's leases are reaped when they expire), then one last run finishes the queue. The
emulator's published media are the truth: one per post, none missing.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml

from scheduler.config import Settings, load_settings
from scheduler.store import Store
from tests.daemonrun import run_until_idle
from tests.helpers import image_spec

ROOT = Path(__file__).resolve().parents[2]
SHOP, BRAND2 = "17841400000000001", "17841400000000002"
TOKENS = {"IGSCHED_TEST_TOKEN_SHOP": "tok-shop-crash-0001", "IGSCHED_TEST_TOKEN_BRAND2": "tok-brand2-crash-0002"}
STARTED = "igsched daemon"  # "igsched daemon <identity> started (…)"


@pytest.fixture(autouse=True)
def tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in TOKENS.items():
        monkeypatch.setenv(k, v)


def write_config(tmp_path: Path, db_url: str, base_url: str, identity: str, **extra: Any) -> Path:
    cfg: dict[str, Any] = {
        "database": {"url": db_url},
        "graph": {"base_url": base_url, "timeout_s": 1.0},
        "accounts": [
            {"name": "shop", "ig_user_id": SHOP, "token_env": "IGSCHED_TEST_TOKEN_SHOP"},
            {"name": "brand2", "ig_user_id": BRAND2, "token_env": "IGSCHED_TEST_TOKEN_BRAND2"},
        ],
        "daemon": {"identity": identity, "tick_s": 0.5, "lease_s": 2, "workers": 16},
        "staging": {"lead_s": {"image": 1.5, "story": 1.5, "reel": 2, "carousel": 2}, "poll_min_s": 0.1},
        "preflight": {"enabled": False},
        "retries": {"base_s": 0.2, "cap_s": 1},
        "log_level": "INFO",
        **extra,
    }
    path = tmp_path / f"config-{identity}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def spawn(config: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, **TOKENS}
    with log.open("ab") as err:
        return subprocess.Popen([sys.executable, "-m", "scheduler", "--config", str(config), "run"],
                                cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=err)


def wait_started(proc: subprocess.Popen[bytes], log: Path, mark: int, timeout_s: float = 15.0) -> None:
    """Until this run's "started" line is in the log (`mark`: the log size before the run)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with log.open("rb") as f:
            f.seek(mark)
            text = f.read().decode(errors="replace")
        if STARTED in text and " started " in text:
            return
        if proc.poll() is not None:
            raise AssertionError(f"daemon exited with {proc.returncode}:\n{text}")
        time.sleep(0.02)
    raise AssertionError("daemon did not start in time")


def add_accounts(emu: Any) -> None:
    emu.state.add_account(SHOP, username="shop", token=TOKENS["IGSCHED_TEST_TOKEN_SHOP"], quota_total=1000)
    emu.state.add_account(BRAND2, username="brand2", token=TOKENS["IGSCHED_TEST_TOKEN_BRAND2"],
                          quota_total=1000)


def enqueue(settings: Settings, n: int, first_s: float, spread_s: float) -> Store:
    store = Store(settings.database.url)
    store.sync_accounts(settings.accounts)
    specs = [
        image_spec(f"p{i:02d}", in_s=first_s + spread_s * i / n, caption=f"crash post {i}",
                   account="shop" if i % 2 else "brand2")
        for i in range(n)
    ]
    store.enqueue(specs, "test")
    return store


@pytest.mark.slow
def test_sigkill_at_random_moments_loses_nothing_and_publishes_nothing_twice(
    db_url: str, emulator: Any, tmp_path: Path
) -> None:
    emu = emulator
    add_accounts(emu)
    # publishes take a while, so that many kills land while one is in flight
    emu.state.configure(latency_s=0.1, latency_jitter_s=0.2, fault_endpoints=["media_publish"])
    configs = [write_config(tmp_path, db_url, emu.base_url, ident) for ident in ("crash-a", "crash-b")]
    settings = load_settings(configs[0])
    store = enqueue(settings, 50, first_s=2.0, spread_s=12.0)
    log = tmp_path / "daemon.log"
    rng = random.Random(int(os.environ.get("IGSCHED_CRASH_SEED", "4")))

    kills = 0
    while kills < 20:
        mark = log.stat().st_size if log.exists() else 0
        proc = spawn(configs[kills % 2], log)  # alternate: own leases taken back, others' reaped
        try:
            wait_started(proc, log, mark)
            time.sleep(rng.uniform(0.05, 0.7))
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
        assert proc.returncode == -signal.SIGKILL
        kills += 1

    run_until_idle(settings, store, timeout_s=60)

    posts = store.list_posts(["published", "failed", "cancelled", "planned", "staging", "ready",
                              "publishing", "verifying", "deferred", "waiting"])
    assert len(posts) == 50
    not_published = [(p.key, p.state, p.reason) for p in posts if p.state != "published"]
    assert not not_published, not_published
    captions = Counter(m["caption"] for m in emu.state.published_media())
    assert len(captions) == 50 and set(captions.values()) == {1}, captions.most_common(3)
    by_caption = {m["caption"]: m["id"] for m in emu.state.published_media()}
    for p in posts:  # and each post knows which media is its own
        assert p.media_id == by_caption[p.spec["caption"]], (p.key, p.media_id)
    ok_publishes = [r for r in emu.state.requests if r["endpoint"] == "media_publish" and r["outcome"] == "ok"]
    assert len(ok_publishes) == 50

    # the kills did hit publishes in flight, and those went through verification
    verified = [p.key for p in posts if any((e["reason"] or "").startswith("verified:") for e in store.events(p.id))]
    assert verified, "no kill landed while a publish was in flight; the test proved little"
    # no token in the logs or the database
    text = log.read_text(errors="replace")
    with store.engine.connect() as c:
        text += repr(c.execute(sa.text("SELECT * FROM api_calls")).all())
        text += repr(c.execute(sa.text("SELECT * FROM post_events")).all())
    assert not any(t in text for t in TOKENS.values())


@pytest.mark.slow
def test_sigterm_exits_zero_promptly_and_loses_nothing(db_url: str, emulator: Any, tmp_path: Path) -> None:
    emu = emulator
    add_accounts(emu)
    emu.state.configure(latency_s=0.2, fault_endpoints=["media_publish"])
    config = write_config(tmp_path, db_url, emu.base_url, "term-a")
    settings = load_settings(config)
    store = enqueue(settings, 6, first_s=1.0, spread_s=1.0)
    log = tmp_path / "daemon.log"
    proc = spawn(config, log)
    wait_started(proc, log, 0)
    deadline = time.monotonic() + 15
    while not emu.state.published_media() and time.monotonic() < deadline:
        time.sleep(0.02)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(15) == 0, log.read_text()
    stopped_in = time.monotonic() - t0
    assert "stopped" in log.read_text()
    assert stopped_in < 10, stopped_in  # generous: steps in flight finish first

    run_until_idle(settings, store, timeout_s=30)
    assert {p.state for p in store.list_posts(["published", "failed"])} == {"published"}
    assert len(store.list_posts(["published"])) == 6
    captions = Counter(m["caption"] for m in emu.state.published_media())
    assert len(captions) == 6 and set(captions.values()) == {1}
