"""The daemon with a hostile or broken configuration: a token with a second line never
reaches a row, a log line or an output; misconfiguration is said once at start; SIGHUP
drains and exits 0."""

from __future__ import annotations

import json
import logging
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml
from click.testing import CliRunner

from scheduler.cli import main
from scheduler.store import Store
from tests.daemonrun import run_until
from tests.helpers import image_spec, settings_for

SECRET_PARTS = ("IGQVJabc123secretvalue", "rotated")


def test_a_token_with_a_second_line_never_reaches_a_row_a_log_or_an_output(
    db_url: str, emulator: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    token_file = tmp_path / "shop.token"
    token_file.write_text("IGQVJabc123secretvalue==\n# rotated\n")
    token_file.chmod(0o600)
    shop = {"name": "shop", "ig_user_id": "17841400000000001", "token_file": str(token_file)}
    settings = settings_for(db_url, emulator.base_url, accounts=[shop])
    store = Store(db_url)
    store.sync_accounts(settings.accounts)
    store.enqueue([image_spec("t1", in_s=2)], "test")
    caplog.set_level(logging.DEBUG)

    run_until(settings, store, lambda: store.get("t1").state == "waiting", timeout_s=20)  # type: ignore[union-attr]

    rec = store.get("t1")
    assert rec is not None and rec.reason is not None and "account shop: the token in token_file" in rec.reason
    assert emulator.state.requests == []  # nothing was sent with a broken token
    with store.engine.connect() as c:
        dump = "".join(repr(c.execute(sa.text(f"SELECT * FROM {t}")).all())
                       for t in ("posts", "post_events", "api_calls", "accounts"))
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"database": {"url": db_url}, "accounts": [shop]}))
    runner = CliRunner()
    outputs = [runner.invoke(main, ["--config", str(config), *args]).output
               for args in (["list"], ["list", "--json"], ["show", "t1"], ["show", "t1", "--json"], ["quota"])]
    assert json.loads(outputs[1])[0]["state"] == "waiting"
    for text in (dump, caplog.text, *outputs):
        for part in SECRET_PARTS:
            assert part not in text


def _start(config: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "scheduler", "--config", str(config), "run"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "IGSCHED_UNSET_TOKEN": ""})


def _read_until(proc: subprocess.Popen[str], needle: str, timeout_s: float = 20) -> str:
    assert proc.stderr is not None
    seen = ""
    deadline = time.monotonic() + timeout_s
    while needle not in seen:
        left = deadline - time.monotonic()
        assert left > 0, seen
        ready, _, _ = select.select([proc.stderr], [], [], min(left, 0.5))
        if ready:
            line = proc.stderr.readline()
            assert line or proc.poll() is None, seen
            seen += line
    return seen


def test_run_names_misconfiguration_once_at_start_and_sighup_drains(tmp_path: Path) -> None:
    open_token = tmp_path / "open.token"
    open_token.write_text("IGQVJabc123secretvalue==\n")
    open_token.chmod(0o644)
    two_lines = tmp_path / "two.token"
    two_lines.write_text("IGQVJabc123secretvalue==\n# rotated\n")
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({
        "database": {"url": f"sqlite:///{tmp_path / 'd.db'}"},
        "graph": {"base_url": "http://127.0.0.1:9"},
        "accounts": [
            {"name": "env", "ig_user_id": "1", "token_env": "IGSCHED_UNSET_TOKEN"},
            {"name": "missing", "ig_user_id": "2", "token_file": str(tmp_path / "nope")},
            {"name": "open", "ig_user_id": "3", "token_file": str(open_token)},
            {"name": "two", "ig_user_id": "4", "token_file": str(two_lines)},
        ],
        "queue": {"inbox_dir": str(tmp_path / "no-inbox")},
        "daemon": {"tick_s": 0.2},
    }))
    proc = _start(config)
    try:
        err = _read_until(proc, "started")
        time.sleep(0.5)  # a few ticks: nothing is said again
        proc.send_signal(signal.SIGHUP)
        out, rest = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    err += rest
    assert proc.returncode == 0, err
    assert "stopped" in err
    for expected in ("account env: environment variable IGSCHED_UNSET_TOKEN is not set",
                     "account missing: cannot read token_file",
                     "account open: token_file", "account two: the token in token_file",
                     "queue.inbox_dir"):
        assert err.count(expected) == 1, (expected, err)
    for part in SECRET_PARTS:
        assert part not in err and part not in out


def test_an_unknown_log_level_stops_run_before_it_starts(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"database": {"url": f"sqlite:///{tmp_path / 'd.db'}"},
                                      "log_level": "BANANA"}))
    proc = subprocess.run([sys.executable, "-m", "scheduler", "--config", str(config), "run"],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert f"{config}: field 'log_level': " in proc.stderr and "unknown log level 'BANANA'" in proc.stderr


def test_the_daemons_media_check_never_fetches_a_metadata_address(db_url: str, emulator: Any,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IGSCHED_TEST_TOKEN_SHOP", "tok-shop-secret")
    settings = settings_for(db_url, emulator.base_url)
    store = Store(db_url)
    store.sync_accounts(settings.accounts)
    store.enqueue([image_spec("meta", in_s=600, url="https://169.254.169.254/latest/meta-data/a.jpg"),
                   image_spec("emu", in_s=600, url=f"{emulator.base_url}/_media/ok.jpg")], "test")
    run_until(settings, store, lambda: all(p.preflight is not None or p.state == "failed"
                                           for p in store.list_posts(["planned", "failed"])), timeout_s=20)
    meta, emu = store.get("meta"), store.get("emu")
    assert meta is not None and meta.state == "failed"
    assert "leads to 169.254.169.254, a link-local address" in (meta.reason or "")
    assert emu is not None and emu.state == "planned" and emu.preflight == "ok"  # the emulator's own media
