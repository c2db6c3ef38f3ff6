"""The inbox folder: dropped files are imported, moved to done/ or rejected/ with the reasons."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from scheduler.clock import FakeClock
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
def test_daemon_imports_from_inbox_and_publishes(db: str, tmp_path: Path, emulator: Any, clock: FakeClock,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IGSCHED_TEST_TOKEN_SHOP", "tok")
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    db_url = f"sqlite:///{tmp_path / 'd.db'}"
    settings = settings_for(db_url, emulator.base_url, queue={"inbox_dir": str(inbox), "settle_s": 1})
    store = Store(db_url, clock=clock)
    (inbox / "drop.yaml").write_text(_queue(datetime.now(UTC) + timedelta(seconds=4)))
    _age(inbox / "drop.yaml")
    run_until_idle(settings, store, timeout_s=30)
    rec = store.get("inbox-1")
    assert rec is not None and rec.state == "published" and rec.lateness_s is not None and rec.lateness_s < 1
    assert (inbox / "done" / "drop.yaml").is_file()


def _inbox_settings(db_url: str, inbox: Path, settle_s: float = 10) -> Any:
    return settings_for(db_url, queue={"inbox_dir": str(inbox), "settle_s": settle_s})


def test_one_scan_with_hostile_files_imports_the_good_ones_and_loses_nothing(db_url: str, tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    settings = _inbox_settings(db_url, inbox)
    store = Store(db_url)
    store.sync_accounts(settings.accounts)
    at = datetime.now(UTC) + timedelta(hours=1)
    secret = tmp_path / "shadow"
    secret.write_text("root:$6$very-secret-hash:19000:0:99999:7:::\n")
    secret.chmod(0o600)
    # sorted first: a file that crashed the parser (a timestamp that is not a time)
    (inbox / "a-crash.yaml").write_text("account: shop\nposts:\n  - at: 2027-02-30 10:00:00Z\n"
                                        "    image: https://cdn.example.com/i.jpg\n")
    (inbox / "b-good.yaml").write_text(_queue(at, key="good-b"))
    (inbox / "c-link.yaml").symlink_to(secret)
    (inbox / "d-dir.yaml").mkdir()
    (inbox / "e-sub").mkdir()
    half = inbox / "f-half.yaml"
    writer = half.open("w")
    writer.write("account: shop\nposts:\n")
    writer.flush()
    (inbox / "g-good.yaml").write_text(_queue(at, key="good-g"))
    (inbox / ".h-tmp.yaml").write_text(_queue(at, key="hidden"))  # a writer's temp file
    os.mkfifo(inbox / "i-fifo.yml")
    later = time.time() + 11  # every file has settled, as far as time tells

    results = scan_inbox(settings, store, "test", now=later)

    assert sorted(p.key for p in store.list_posts(["planned"])) == ["good-b", "good-g"]
    rejected = {r.file: r.problems for r in results if r.report is None}
    assert set(rejected) == {"a-crash.yaml", "c-link.yaml", "d-dir.yaml", "i-fifo.yml"}
    assert "post 1: field 'at'" in rejected["a-crash.yaml"][0]
    assert "is a symbolic link" in rejected["c-link.yaml"][0]
    errors = {p.name: p for p in (inbox / "rejected").glob("*.error.txt")}
    for name, path in errors.items():
        text = path.read_text()
        assert "very-secret-hash" not in text and "root:" not in text, name
        assert path.stat().st_mode & 0o007 == 0  # never readable by others
    assert (inbox / "rejected" / "c-link.yaml").is_symlink()  # moved as the link, unread
    assert secret.read_text().startswith("root:")
    assert half.exists() and (inbox / "e-sub").is_dir() and (inbox / ".h-tmp.yaml").exists()

    # the writer finishes: its file is imported once it is closed and has settled
    writer.write(yaml.safe_dump({"posts": [{"key": "half", "at": at.isoformat(),
                                            "image": "https://cdn.example.com/h.jpg"}]}).split("\n", 1)[1])
    writer.close()
    assert scan_inbox(settings, store, "test", now=time.time() + 1) == []  # changed just now
    (result,) = scan_inbox(settings, store, "test", now=time.time() + 11)
    assert result.file == "f-half.yaml" and result.report is not None and result.report.new == ["half"]
    assert sorted(p.key for p in store.list_posts(["planned"])) == ["good-b", "good-g", "half"]


def test_a_file_written_to_after_its_import_is_imported_again(db_url: str, tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    settings = _inbox_settings(db_url, inbox)
    store = Store(db_url)
    store.sync_accounts(settings.accounts)
    at = datetime.now(UTC) + timedelta(hours=1)
    path = inbox / "late.yaml"
    path.write_text(_queue(at, key="first"))
    (result,) = scan_inbox(settings, store, "test", now=time.time() + 11)
    assert result.report is not None and result.report.new == ["first"]
    done = inbox / "done" / "late.yaml"  # a writer that kept its descriptor writes here now
    doc = yaml.safe_load(done.read_text())
    doc["posts"].append({"key": "second", "at": at.isoformat(), "image": "https://cdn.example.com/2.jpg"})
    done.write_text(yaml.safe_dump(doc))

    (again,) = scan_inbox(settings, store, "test", now=time.time() + 11)
    assert again.report is not None and again.report.new == ["second"] and again.report.unchanged == ["first"]
    assert sorted(p.key for p in store.list_posts(["planned"])) == ["first", "second"]


def test_a_file_being_written_is_left_until_it_settles(db_url: str, tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    settings = _inbox_settings(db_url, inbox, settle_s=10)
    store = Store(db_url)
    store.sync_accounts(settings.accounts)
    (inbox / "new.yaml").write_text(_queue(datetime.now(UTC) + timedelta(hours=1)))
    assert scan_inbox(settings, store, "test", now=time.time() + 5) == []
    assert scan_inbox(settings, store, "test", now=time.time() + 10.5)[0].report is not None
