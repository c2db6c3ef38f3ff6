"""The inbox folder: dropped files are imported, moved to done/ or rejected/ with the reasons."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from scheduler.inbox import scan_inbox
from scheduler.store import Store
from tests.daemonrun import run_until_idle
from tests.helpers import settings_for


def _queue(at: datetime, key: str = "inbox-1", **extra: Any) -> str:
    post = {"key": key, "at": at.isoformat(), "image": "https://cdn.example.com/i.jpg", "caption": "from the inbox"}
    post.update(extra)
    return yaml.safe_dump({"account": "shop", "posts": [post]})


def _age(path: Path, seconds: float = 5) -> None:
    t = time.time() - seconds
    os.utime(path, (t, t))


def test_inbox_imports_good_files_and_rejects_bad_ones(db_url: str, tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    settings = settings_for(db_url, queue={"inbox_dir": str(inbox), "settle_s": 1})
    store = Store(db_url)
    store.sync_accounts(settings.accounts)
    at = datetime.now(UTC) + timedelta(hours=1)
    (inbox / "good.yaml").write_text(_queue(at))
    (inbox / "bad.yaml").write_text(_queue(at, key="inbox-2", share_to_feed=True, colour="red"))
    (inbox / "notes.txt").write_text("not a queue file")
    (inbox / "fresh.yml").write_text(_queue(at, key="inbox-3"))
    for name in ("good.yaml", "bad.yaml"):
        _age(inbox / name)

    results = scan_inbox(settings, store, "test")

    assert sorted(r.file for r in results) == ["bad.yaml", "good.yaml"]
    assert (inbox / "done" / "good.yaml").is_file() and not (inbox / "good.yaml").exists()
    assert (inbox / "rejected" / "bad.yaml").is_file()
    errors = (inbox / "rejected" / "bad.yaml.error.txt").read_text()
    assert "share_to_feed does not apply to an image post" in errors
    assert "unknown key 'colour'" in errors
    assert (inbox / "notes.txt").exists()  # not ours
    assert (inbox / "fresh.yml").exists()  # still being written, maybe: next scan
    assert [p.key for p in store.list_posts(["planned"])] == ["inbox-1"]

    # the same file again: moved to done/ under a new name, nothing added
    (inbox / "good.yaml").write_text(_queue(at))
    _age(inbox / "good.yaml")
    _age(inbox / "fresh.yml")
    results = scan_inbox(settings, store, "test")
    good = next(r for r in results if r.file == "good.yaml")
    assert good.report is not None and good.report.unchanged == ["inbox-1"]
    assert len(list((inbox / "done").iterdir())) == 3
    assert {p.key for p in store.list_posts(["planned"])} == {"inbox-1", "inbox-3"}


@pytest.mark.parametrize("db", ["sqlite"])
def test_daemon_imports_from_inbox_and_publishes(db: str, tmp_path: Path, emulator: Any,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IGSCHED_TEST_TOKEN_SHOP", "tok")
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    db_url = f"sqlite:///{tmp_path / 'd.db'}"
    settings = settings_for(db_url, emulator.base_url, queue={"inbox_dir": str(inbox), "settle_s": 1})
    store = Store(db_url)
    (inbox / "drop.yaml").write_text(_queue(datetime.now(UTC) + timedelta(seconds=4)))
    _age(inbox / "drop.yaml")
    run_until_idle(settings, store, timeout_s=30)
    rec = store.get("inbox-1")
    assert rec is not None and rec.state == "published" and rec.lateness_s is not None and rec.lateness_s < 1
    assert (inbox / "done" / "drop.yaml").is_file()
