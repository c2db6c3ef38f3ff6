"""`igsched status [--json]` and its exit codes (0 healthy, 1 a person is needed), on SQLite
and PostgreSQL, after real daemon runs against the fake Graph API."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from scheduler.clock import FakeClock, utcnow
from scheduler.emulator import RunningEmulator
from scheduler.store import Store
from tests.kinds_support import (
    SHOP_ID,
    TOKENS,
    at_in,
    by_key,
    enqueue_yaml,
    media_url,
    run_daemon,
    warped_emulator,
)
from tests.service_support import (
    cli,
    close_connections,  # noqa: F401  (autouse fixture)
    service_config,
    settings_of,
    write_config,
)


@pytest.fixture(autouse=True)
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IGSCHED_TEST_TOKEN_SHOP", TOKENS["shop"])
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "state"))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def emu(clock: FakeClock) -> Iterator[RunningEmulator]:
    with warped_emulator(clock) as e:
        e.state.add_account(SHOP_ID, username="shop", token=TOKENS["shop"])
        yield e


def _status(config: Path) -> tuple[int, dict[str, Any]]:
    code, out, _ = cli(config, "status", "--json")
    text_code, text, _ = cli(config, "status")
    assert text_code == code, text
    assert ("healthy" in text.splitlines()[0]) == (code == 0)
    return code, json.loads(out)


def _published_one(db_url: str, emu: RunningEmulator, clock: FakeClock, tmp_path: Path) -> tuple[Path, Store]:
    cfg = service_config(db_url, emu.base_url)
    settings = settings_of(cfg)
    store = Store(db_url, clock=clock)
    enqueue_yaml(store, settings, f"account: shop\nposts:\n  - {{key: one, at: {at_in(60)}, "
                                  f"image: {media_url(emu, 'one.jpg')}}}\n  - {{key: two, at: {at_in(7200)}, "
                                  f"image: {media_url(emu, 'two.jpg')}}}\n")
    run_daemon(settings, store, timeout_s=30, until=lambda: by_key(store)["one"].state == "published")
    return write_config(tmp_path, cfg), store


def test_healthy_with_a_daemon_ticking(db_url: str, emu: RunningEmulator, clock: FakeClock, tmp_path: Path) -> None:
    config, _ = _published_one(db_url, emu, clock, tmp_path)
    Store(db_url).daemon_started("ticking", "host-b", 4242)  # a replica alive right now
    code, doc = _status(config)
    assert code == 0 and doc["healthy"] is True and doc["problems"] == []
    daemons = {d["identity"]: d for d in doc["daemons"]}
    assert daemons["first"]["running"] is False and daemons["first"]["stopped_at"] is not None
    assert daemons["ticking"]["running"] is True and daemons["ticking"]["seconds_since_tick"] < 30
    assert doc["posts"] == {"published": 1, "planned": 1}
    assert doc["next_due"]["key"] == "two" and doc["next_due"]["state"] == "planned"
    assert doc["actions"] == {}  # no engagement action yet
    assert doc["needs_reauth"] == [] and doc["paused_accounts"] == []
    assert doc["tokens"] == [{"account": "shop", "source": "config", "expires_at": None,
                              "days_left": None, "refreshed_at": None}]


def test_an_account_needing_reauthorisation_needs_a_person(
    db_url: str, emu: RunningEmulator, clock: FakeClock, tmp_path: Path
) -> None:
    emu.state.expire_token(SHOP_ID)
    cfg = service_config(db_url, emu.base_url)
    settings = settings_of(cfg)
    store = Store(db_url, clock=clock)
    enqueue_yaml(store, settings, f"account: shop\nposts:\n  - {{key: w, at: {at_in(60)}, image: {media_url(emu, 'w.jpg')}}}\n")
    run_daemon(settings, store, timeout_s=30, until=lambda: (a := store.account("shop")) is not None and a.needs_reauth)
    code, doc = _status(write_config(tmp_path, cfg))
    assert code == 1 and doc["healthy"] is False
    assert [a["account"] for a in doc["needs_reauth"]] == ["shop"]
    assert any("shop needs re-authorisation" in p for p in doc["problems"])


def test_a_daemon_that_stopped_ticking_or_a_token_about_to_expire_needs_a_person(
    db_url: str, tmp_path: Path
) -> None:
    config = write_config(tmp_path, service_config(db_url, "http://127.0.0.1:9", graph={"login": "instagram"}))
    two_minutes_ago = FakeClock(utcnow() - timedelta(minutes=2))
    Store(db_url, clock=two_minutes_ago).daemon_started("stuck", "host-a", 99)
    code, doc = _status(config)
    assert code == 1
    [problem] = doc["problems"]
    assert problem.startswith("daemon stuck: no tick for 1") and doc["daemons"][0]["running"] is True

    store = Store(db_url)
    store.daemon_started("stuck", "host-a", 99)  # it ticks again
    assert _status(config)[0] == 0
    state = store.seed_token("shop", "f" * 64)
    assert store.claim_refresh("shop", state.version, "d", 60)
    now = store.now()
    store.store_refreshed("shop", "ciphertext", now, now + timedelta(days=3))
    code, doc = _status(config)
    assert code == 1 and doc["tokens"][0]["days_left"] == pytest.approx(3, abs=0.01)
    assert "token expires in 3.0 days" in doc["problems"][0]


def test_posts_waiting_for_an_unreadable_token_need_a_person(
    db_url: str, emu: RunningEmulator, clock: FakeClock, tmp_path: Path
) -> None:
    fifo = tmp_path / "shop.token"
    os.mkfifo(fifo)  # e.g. a credential that systemd did not pass: nothing can be published
    cfg = service_config(db_url, emu.base_url)
    cfg["accounts"] = [{"name": "shop", "ig_user_id": SHOP_ID, "token_file": str(fifo)}]
    settings = settings_of(cfg)
    store = Store(db_url, clock=clock)
    enqueue_yaml(store, settings, f"account: shop\nposts:\n  - {{key: w, at: {at_in(60)}, image: {media_url(emu, 'w.jpg')}}}\n")
    run_daemon(settings, store, timeout_s=30, until=lambda: by_key(store)["w"].state == "waiting")
    # status runs where the token cannot be read either way: it reports what the daemon recorded
    code, doc = _status(write_config(tmp_path, cfg))
    assert code == 1 and doc["healthy"] is False
    assert doc["problems"] == ["1 post waiting for their account (a token that cannot be read, an account not "
                               "configured or needing re-authorisation): `igsched list --state waiting` says why"]
