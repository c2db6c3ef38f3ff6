"""The command line contract (README "Command line"): commands, --json, exit codes 0 / 1 / 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from scheduler.cli import main

SHOP = {"name": "shop", "ig_user_id": "17841400000000001", "token_env": "IGSCHED_TEST_TOKEN_SHOP"}


def write_config(tmp: Path, db_url: str, **extra: object) -> Path:
    cfg = {"database": {"url": db_url}, "accounts": [SHOP], **extra}
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


AT = (datetime.now(UTC) + timedelta(hours=2)).replace(microsecond=0).isoformat()


def write_queue(tmp: Path, name: str = "q.yaml", caption: str = "hello", at: str = AT) -> Path:
    path = tmp / name
    path.write_text(yaml.safe_dump({"account": "shop", "posts": [
        {"key": "one", "at": at, "image": "https://cdn.example.com/1.jpg", "caption": caption},
        {"at": at, "story": "https://cdn.example.com/s.jpg"},
    ]}))
    return path


def _cli(tmp_path: Path, db_url: str):  # type: ignore[no-untyped-def]
    config = write_config(tmp_path, db_url)
    runner = CliRunner()

    def run(*args: str) -> tuple[int, str, str]:
        r = runner.invoke(main, ["--config", str(config), *args], catch_exceptions=False)
        return r.exit_code, r.stdout, r.stderr

    return run


@pytest.fixture
def cli(tmp_path: Path, db_url: str):  # type: ignore[no-untyped-def]
    return _cli(tmp_path, db_url)


@pytest.fixture
def new_db_cli(tmp_path: Path, empty_db_url: str):  # type: ignore[no-untyped-def]
    """The CLI on a database without tables (for `db upgrade`)."""
    return _cli(tmp_path, empty_db_url)


def test_enqueue_list_show_cancel_retry_history(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    q = write_queue(tmp_path)
    code, out, _ = cli("enqueue", str(q))
    assert code == 0 and "2 new, 0 updated, 0 unchanged" in out
    code, out, _ = cli("enqueue", str(q))
    assert code == 0 and "0 new, 0 updated, 2 unchanged" in out
    write_queue(tmp_path, caption="edited")
    code, out, _ = cli("enqueue", str(q))
    assert code == 0 and "updated    one" in out and "1 updated" in out

    code, out, _ = cli("list", "--json")
    rows = json.loads(out)
    assert code == 0 and len(rows) == 2
    one = next(r for r in rows if r["key"] == "one")
    assert {"key", "account", "kind", "at", "state", "reason"} <= set(one)
    assert one["state"] == "planned" and one["kind"] == "image" and one["reason"] is None

    code, out, _ = cli("show", "one", "--json")
    detail = json.loads(out)
    assert code == 0 and detail["spec"]["caption"] == "edited"
    assert [e["to"] for e in detail["events"]] == ["planned", "planned"]

    code, out, _ = cli("cancel", "one")
    assert code == 0 and "cancelled one" in out
    code, _, err = cli("cancel", "one")
    assert code == 2 and "already cancelled" in err
    code, out, _ = cli("history", "--json")
    assert [r["key"] for r in json.loads(out)] == ["one"]
    code, out, _ = cli("retry", "one")
    assert code == 0 and "was cancelled" in out
    code, out, _ = cli("list", "--state", "planned", "--json")
    assert len(json.loads(out)) == 2
    code, _, err = cli("show", "nope")
    assert code == 2 and "no post with key nope" in err


def test_invalid_file_imports_nothing_and_exits_2(new_db_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cli = new_db_cli
    good = write_queue(tmp_path, "good.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("account: shop\nposts:\n  - at: 2020-01-01T00:00:00+00:00\n    image: http://x.example/a.png\n    captoin: hi\n")
    code, _, err = cli("enqueue", str(good), str(bad))
    assert code == 2
    assert "bad.yaml: post 1" in err and "captoin" in err and "in the past" in err
    assert "nothing was changed" in err
    assert cli("db", "upgrade")[0] == 0
    code, out, _ = cli("list", "--json")
    assert json.loads(out) == []  # the good file was not imported either
    code, out, err = cli("validate", str(good), str(bad))
    assert code == 2 and "good.yaml: 2 posts ok" in out
    code, out, _ = cli("validate", str(good))
    assert code == 0


def test_unconfigured_account_is_invalid(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    q = tmp_path / "q.yaml"
    at = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    q.write_text(yaml.safe_dump({"account": "other", "posts": [{"at": at, "image": "https://x.example/a.jpg"}]}))
    code, _, err = cli("validate", str(q))
    assert code == 2 and "'other' is not configured" in err


def test_quota_json_lists_accounts(new_db_cli) -> None:  # type: ignore[no-untyped-def]
    cli = new_db_cli
    code, out, _ = cli("db", "upgrade")
    assert code == 0 and "up to date" in out
    code, out, _ = cli("quota", "--json")
    rows = json.loads(out)
    assert code == 0 and rows[0]["account"] == "shop" and rows[0]["paused"] is False
    assert rows[0]["quota_used"] == 0


def test_config_errors_name_the_key(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("database: {url: 'sqlite:///x.db'}\ngraph: {base_url: https://graph.instagram.com, timout_s: 3}\n")
    r = CliRunner().invoke(main, ["--config", str(cfg), "list"])
    assert r.exit_code == 2 and "graph.timout_s" in r.stderr and "unknown key" in r.stderr
    r = CliRunner().invoke(main, ["--config", str(tmp_path / "missing.yaml"), "list"])
    assert r.exit_code == 2 and "not found" in r.stderr


def test_read_commands_on_a_new_database_say_to_upgrade(tmp_path: Path) -> None:
    config = write_config(tmp_path, f"sqlite:///{tmp_path / 'new.db'}")
    r = CliRunner().invoke(main, ["--config", str(config), "list"])
    assert r.exit_code == 1 and "igsched db upgrade" in r.stderr


def test_unreachable_database_is_a_clear_runtime_error(tmp_path: Path) -> None:
    config = write_config(tmp_path, "postgresql+psycopg://nobody:secretpw@127.0.0.1:1/none")
    r = CliRunner().invoke(main, ["--config", str(config), "list"])
    assert r.exit_code == 1 and "cannot" in r.stderr and "secretpw" not in r.stderr


def test_python_dash_m_and_usage_errors() -> None:
    r = subprocess.run([sys.executable, "-m", "scheduler", "--help"], capture_output=True, text=True,
                       env={**os.environ}, timeout=60)
    assert r.returncode == 0 and "enqueue" in r.stdout and "emulator" in r.stdout
    r = subprocess.run([sys.executable, "-m", "scheduler", "frobnicate"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
