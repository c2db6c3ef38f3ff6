"""Several daemons on one PostgreSQL: the work is shared, each post goes out exactly once.

Three `python -m scheduler run` processes with different identities share one database
schema. 300 posts fall due at the same moment; a third account with a publishing quota of 10
has 15 more, so the quota is counted across the replicas inside the database.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml

from scheduler.lifecycle import PostMove
from scheduler.models import MediaItem, PostSpec
from scheduler.store import Store
from scheduler.store.schema import post_events

ROOT = Path(__file__).resolve().parents[2]
ACCOUNTS = {  # name: (ig user id, token, quota)
    "shop": ("17841400000000001", "tok-shop-replica-0001", 1000),
    "brand2": ("17841400000000002", "tok-brand2-replica-0002", 1000),
    "tight": ("17841400000000003", "tok-tight-replica-0003", 10),
}
IDENTITIES = ("replica-1", "replica-2", "replica-3")


def env_name(account: str) -> str:
    return f"IGSCHED_TEST_TOKEN_{account.upper()}"


def write_config(tmp_path: Path, db_url: str, base_url: str, identity: str) -> Path:
    cfg: dict[str, Any] = {
        "database": {"url": db_url},
        "graph": {"base_url": base_url, "timeout_s": 2.0},
        "accounts": [{"name": n, "ig_user_id": i, "token_env": env_name(n)} for n, (i, _, _) in ACCOUNTS.items()],
        "daemon": {"identity": identity, "tick_s": 0.5, "lease_s": 3, "workers": 16},
        "staging": {"lead_s": {"image": 3, "story": 3, "reel": 3, "carousel": 3}, "poll_min_s": 0.1},
        "preflight": {"enabled": False},
        "retries": {"base_s": 0.2, "cap_s": 1},
    }
    path = tmp_path / f"{identity}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def spec(key: str, account: str, at: datetime) -> PostSpec:
    return PostSpec(key=key, key_explicit=True, account=account, kind="image", at=at,
                    media=(MediaItem("image", f"https://cdn.example.com/{key}.jpg"),),
                    caption=f"replica {key}", source_file="replicas.yaml")


@pytest.mark.slow
@pytest.mark.postgres
def test_three_daemons_share_300_posts_each_published_once(pg_schema_url: str, emulator: Any,
                                                           tmp_path: Path) -> None:
    emu = emulator
    for name, (ig, token, quota) in ACCOUNTS.items():
        emu.state.add_account(ig, username=name, token=token, quota_total=quota)
    configs = [write_config(tmp_path, pg_schema_url, emu.base_url, ident) for ident in IDENTITIES]

    # the daemons start together on an empty schema: one migrates it, the others wait for that
    env = {**os.environ, **{env_name(n): t for n, (_, t, _) in ACCOUNTS.items()}}
    logs = [tmp_path / f"{ident}.log" for ident in IDENTITIES]
    procs = []
    for config, log in zip(configs, logs, strict=True):
        with log.open("wb") as err:
            procs.append(subprocess.Popen([sys.executable, "-m", "scheduler", "--config", str(config), "run"],
                                          cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=err))
    deadline = time.monotonic() + 20
    while not all(" started " in log.read_text() for log in logs):
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs), \
            [log.read_text()[-2000:] for log in logs]
        time.sleep(0.05)

    store = Store(pg_schema_url, upgrade=False)
    due = datetime.now(UTC) + timedelta(seconds=6)
    specs = [spec(f"r{i:03d}", "shop" if i % 2 else "brand2", due) for i in range(300)]
    specs += [spec(f"t{i:02d}", "tight", due) for i in range(15)]
    store.enqueue(specs, "test")

    def settled() -> bool:
        with store.engine.connect() as c:
            rows = c.execute(sa.text(
                "SELECT state, followup_pending, count(*) FROM posts GROUP BY state, followup_pending"
            )).all()
        counts = {(r[0], r[1]): r[2] for r in rows}
        return counts.get(("published", False), 0) == 310 and counts.get(("deferred", False), 0) == 5

    try:
        deadline = time.monotonic() + 60
        while not settled():
            assert time.monotonic() < deadline, "the replicas did not finish in time"
            assert all(p.poll() is None for p in procs), [log.read_text()[-2000:] for log in logs]
            time.sleep(0.2)
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        codes = [p.wait(20) for p in procs]
    assert codes == [0, 0, 0]

    media = emu.state.published_media()
    captions = Counter(m["caption"] for m in media)
    assert len(media) == 310 and set(captions.values()) == {1}
    assert len([r for r in emu.state.requests if r["endpoint"] == "media_publish" and r["outcome"] == "ok"]) == 310
    # the quota was kept across the replicas: 10 for `tight`, never a 2207042
    assert len(emu.state.published_media(ACCOUNTS["tight"][0])) == 10
    assert not [r for r in emu.state.requests if r["error_subcode"] == 2207042]
    tight_waiting = store.list_posts(["deferred"], account="tight")
    assert len(tight_waiting) == 5 and all("quota" in (p.reason or "") for p in tight_waiting)

    # the work was spread: every replica published some
    with store.engine.connect() as c:
        by_actor = dict(c.execute(
            sa.select(post_events.c.actor, sa.func.count()).where(post_events.c.to_state == "published")
            .group_by(post_events.c.actor)
        ).all())
    assert set(by_actor) == set(IDENTITIES), by_actor
    assert sum(by_actor.values()) == 310
    assert min(by_actor.values()) >= 20, by_actor



def test_quota_gate_holds_under_concurrent_publishers(db_url: str) -> None:
    """Many workers of several daemons reserve quota slots while others finish publishing:
    exactly `quota_total` slots are granted, never one more (each check sees one snapshot)."""
    import random
    import threading

    from tests.helpers import image_spec, settings_for

    settings = settings_for(db_url)
    first = Store(db_url)
    first.sync_accounts(settings.accounts)
    first.enqueue([image_spec(f"k{i:02d}", in_s=0) for i in range(40)], "t")
    with first.engine.begin() as c:
        c.execute(sa.text("UPDATE posts SET state = 'ready', container_id = 'c'"))
    first.update_quota("shop", 0, 10, 86400)
    granted: list[str] = []

    def publisher(store: Store, name: str, seed: int) -> None:
        rng = random.Random(seed)
        while batch := store.claim_due(name, 30, 1):
            post = batch[0]
            if store.begin_publish(post, name, 25).ok:
                granted.append(post.key)
                time.sleep(rng.uniform(0, 0.02))  # media_publish in flight
                store.transition(post, PostMove.MARK_PUBLISHED, name, published_at=store.now())
            else:
                store.transition(post, PostMove.TO_DEFERRED, name, next_action_at=store.now() + timedelta(days=1))

    stores = [Store(db_url) for _ in range(3)]
    threads = [threading.Thread(target=publisher, args=(stores[i % 3], f"d{i % 3}", i)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(granted) == 10
    assert len(first.list_posts(["published"])) == 10
    assert len(first.list_posts(["deferred"])) == 30
