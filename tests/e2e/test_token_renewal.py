"""Tokens that renew themselves, end to end: the fake Graph API (standing in for Instagram
Login: graph.login: instagram), two daemons on one database, one clock; SQLite and
PostgreSQL."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from scheduler.clock import FakeClock
from scheduler.daemon import Daemon
from scheduler.emulator import RunningEmulator
from scheduler.graph import GraphClient, GraphError
from scheduler.logformat import QUIET_LOGGERS, setup_logging
from scheduler.service.secrets import read_key_file
from scheduler.store import Store
from tests.kinds_support import (
    SHOP_ID,
    at_in,
    by_key,
    count,
    enqueue_yaml,
    media_url,
    run_daemon,
    warped_emulator,
)
from tests.service_support import (
    cli,
    close_connections,  # noqa: F401  (autouse fixture)
    run_beside,
    service_config,
    settings_of,
    wait_for,
    write_config,
)

DAY = 86400.0
OLD = "IGAAold-shop-token-0123456789abcdefghijklmnop"
REFRESH = "refresh_access_token"


@pytest.fixture(autouse=True)
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where igsched makes its key file (systemd's StateDirectory=)."""
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "state"))
    return tmp_path / "state"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def emu(clock: FakeClock) -> Iterator[RunningEmulator]:
    with warped_emulator(clock) as e:
        e.state.add_account(SHOP_ID, username="shop")
        e.state.set_token(SHOP_ID, OLD, age_s=55 * DAY, lifetime_s=60 * DAY)
        yield e


def _post(emu: RunningEmulator, key: str, in_s: float) -> str:
    return f"account: shop\nposts:\n  - {{key: {key}, at: {at_in(in_s)}, image: {media_url(emu, key + '.jpg')}}}\n"


def _all_rows_text(store: Store) -> str:
    """Every value of every table, as text (what a database dump would show)."""
    out = []
    with store.engine.connect() as conn:
        for table in sa.inspect(conn).get_table_names():
            for row in conn.execute(sa.text(f'SELECT * FROM "{table}"')):
                out.append(" ".join(str(v) for v in row))
    return "\n".join(out)


def test_a_55_day_old_token_is_refreshed_once_and_every_daemon_publishes_with_the_new_one(
    db_url: str, emu: RunningEmulator, clock: FakeClock, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("IGSCHED_TEST_TOKEN_SHOP", OLD)
    caplog.set_level(logging.DEBUG)
    shipped = io.StringIO()
    levels = {name: logging.getLogger(name).level for name in ("", *QUIET_LOGGERS)}
    setup_logging("DEBUG", "json", shipped)  # the daemon's own log handler, as `run` sets it up
    cfg = service_config(db_url, emu.base_url, graph={"login": "instagram"}, tokens={"check_s": 0.05})
    first, second = settings_of(cfg), settings_of(cfg, identity="second")
    store1, store2 = Store(db_url, clock=clock), Store(db_url, clock=clock)
    try:
        # both daemons run when the refresh falls due (a token of unknown expiry: a minute
        # after it is first seen); exactly one of them refreshes it
        async def refresh_falls_due() -> None:
            await wait_for(lambda: store1.token_state("shop") is not None)
            clock.advance(90)
            await wait_for(lambda: (s := store1.token_state("shop")) is not None and s.source == "refreshed")
            await asyncio.sleep(0.5)  # more checks by both daemons: no second refresh

        d1, d2 = Daemon(first, store1), Daemon(second, store2)
        asyncio.run(run_beside([d1, d2], refresh_falls_due))
        assert count(emu, REFRESH) == 1
        assert sum(r.refreshed for d in (d1, d2) for r in d.duties if hasattr(r, "refreshed")) == 1

        state = store1.token_state("shop")
        assert state is not None and state.refreshed_token is not None and state.expires_at is not None
        assert (state.expires_at - clock.now()).total_seconds() == pytest.approx(60 * DAY, abs=5)
        key_file = tmp_path / "state" / "igsched.key"
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        new = read_key_file(key_file).decrypt(state.refreshed_token)
        assert new != OLD and new not in state.refreshed_token

        async def old_and_new() -> None:
            async with GraphClient(emu.base_url, "v23.0", 5) as client:
                with pytest.raises(GraphError) as refused:
                    await client.me(OLD)
                assert refused.value.code == 190
                assert (await client.me(new))["id"] == SHOP_ID

        asyncio.run(old_and_new())

        # a post due afterwards is published by the second daemon, then one by the first: only
        # the new token works now, and neither daemon refreshes again
        enqueue_yaml(store2, second, _post(emu, "after-refresh", 600))
        run_daemon(second, store2, timeout_s=30, warp=clock)
        enqueue_yaml(store1, first, _post(emu, "later-still", 900))
        run_daemon(first, store1, timeout_s=30, warp=clock)
        posts = by_key(store1)
        assert posts["after-refresh"].state == "published" and posts["later-still"].state == "published"
        assert count(emu, REFRESH) == 1 and count(emu, "media_publish") == 2

        # the new token is nowhere in plain text: database, logs, command output
        config = write_config(tmp_path, cfg)
        outputs = [cli(config, *args) for args in (
            ["tokens", "--json"], ["tokens"], ["status", "--json"], ["status"], ["list", "--json"],
            ["history", "--json"], ["show", "after-refresh", "--json"],
        )]
        [tokens] = json.loads(outputs[0][1])
        assert tokens["source"] == "refreshed" and tokens["days_left"] == pytest.approx(60, abs=0.1)
        assert tokens["refreshed_at"] is not None
        texts = [_all_rows_text(store1), caplog.text, shipped.getvalue(),
                 *(o + e for _, o, e in outputs)]
        if db_url.startswith("sqlite"):
            texts += [p.read_bytes().decode("latin-1") for p in tmp_path.glob("igsched.db*")]
        for text in texts:
            assert new not in text and OLD not in text
        assert "refreshed" in shipped.getvalue()  # the log says what happened, not the token
    finally:  # leave logging as other tests expect it
        root = logging.getLogger()
        for h in [h for h in root.handlers if h.get_name() == "igsched"]:
            root.removeHandler(h)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


def test_a_configured_token_that_differs_from_the_seeded_one_wins(
    db_url: str, emu: RunningEmulator, clock: FakeClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A new login: the person put a fresh token in the configuration after a refresh; it
    replaces the refreshed one (which the new login made useless)."""
    monkeypatch.setenv("IGSCHED_TEST_TOKEN_SHOP", OLD)
    cfg = service_config(db_url, emu.base_url, graph={"login": "instagram"}, tokens={"check_s": 0.05})
    settings = settings_of(cfg)
    store = Store(db_url, clock=clock)

    async def refreshed() -> None:
        await wait_for(lambda: store.token_state("shop") is not None)
        clock.advance(90)
        await wait_for(lambda: (s := store.token_state("shop")) is not None and s.source == "refreshed")

    asyncio.run(run_beside([Daemon(settings, store)], refreshed))
    login = "IGAAnew-login-token-abcdefghijklmnopqrstuvwxyz"
    emu.state.set_token(SHOP_ID, login, age_s=3600, lifetime_s=60 * DAY)  # an hour-old login
    monkeypatch.setenv("IGSCHED_TEST_TOKEN_SHOP", login)
    enqueue_yaml(store, settings, _post(emu, "after-login", 600))
    run_daemon(settings, store, timeout_s=30, warp=clock)
    assert by_key(store)["after-login"].state == "published"
    state = store.token_state("shop")
    assert state is not None and state.source == "config" and state.refreshed_token is None
    # the new token is younger than 24 h: asked at most once more, refused, not refreshed
    assert count(emu, REFRESH, outcome="ok") == 1 and count(emu, REFRESH) <= 2


def test_an_expired_token_needs_reauthorisation_and_facebook_login_is_left_alone(
    db_url: str, emu: RunningEmulator, clock: FakeClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("IGSCHED_TEST_TOKEN_SHOP", OLD)
    emu.state.expire_token(SHOP_ID)
    cfg = service_config(db_url, emu.base_url, graph={"login": "instagram"}, tokens={"check_s": 0.05})
    store = Store(db_url, clock=clock)

    async def refused() -> None:
        await wait_for(lambda: store.token_state("shop") is not None)
        clock.advance(90)
        await wait_for(lambda: (a := store.account("shop")) is not None and a.needs_reauth)

    asyncio.run(run_beside([Daemon(settings_of(cfg), store)], refused))
    account = store.account("shop")
    assert account is not None and account.reauth_reason is not None
    assert "log in again" in account.reauth_reason and "IGSCHED_TEST_TOKEN_SHOP" in account.reauth_reason
    assert count(emu, REFRESH) == 1

    fb = service_config(db_url, emu.base_url, graph={"login": "facebook"}, tokens={"check_s": 0.05},
                        daemon={"identity": "fb"})
    fb_store = Store(db_url, clock=clock)

    async def a_while() -> None:
        clock.advance(30 * DAY)
        await asyncio.sleep(0.5)

    asyncio.run(run_beside([Daemon(settings_of(fb), fb_store)], a_while))
    assert count(emu, REFRESH) == 1  # Page tokens do not expire: never refreshed
