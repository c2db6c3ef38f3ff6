"""The command line under hostile or broken conditions: keys that would move a post between
accounts, keys repeated across files, databases that cannot be used. Always one clear line
and an exit code; never a traceback, SQL or a post's values."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from scheduler.cli import main
from scheduler.store import Store
from tests.e2e.test_cli import AT, SHOP

BRAND2 = {"name": "brand2", "ig_user_id": "17841400000000002", "token_env": "IGSCHED_TEST_TOKEN_BRAND2"}


def _config(tmp: Path, db_url: str) -> Path:
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump({"database": {"url": db_url}, "accounts": [SHOP, BRAND2]}))
    return path


def _queue(tmp: Path, name: str, account: str, key: str = "one", caption: str = "hello") -> Path:
    path = tmp / name
    path.write_text(yaml.safe_dump({"account": account, "posts": [
        {"key": key, "at": AT, "image": "https://cdn.example.com/1.jpg", "caption": caption}]}))
    return path


def _run(config: Path, *args: str) -> tuple[int, str, str]:
    r = CliRunner().invoke(main, ["--config", str(config), *args])
    assert r.exception is None or isinstance(r.exception, SystemExit), r.exception
    return r.exit_code, r.stdout, r.stderr


def test_a_key_moves_to_another_account_only_while_planned(tmp_path: Path, db_url: str) -> None:
    config = _config(tmp_path, db_url)
    assert _run(config, "enqueue", str(_queue(tmp_path, "a.yaml", "shop")))[0] == 0
    # still planned: the post (no containers yet) may move
    code, out, _ = _run(config, "enqueue", str(_queue(tmp_path, "b.yaml", "brand2")))
    assert code == 0 and "updated    one" in out
    assert Store(db_url).get("one").account == "brand2"  # type: ignore[union-attr]
    assert _run(config, "cancel", "one")[0] == 0
    code, _, err = _run(config, "enqueue", str(_queue(tmp_path, "c.yaml", "shop", caption="moved")))
    assert code == 2
    assert (f"{tmp_path / 'c.yaml'}: key one: field 'account': key one belongs to a post of account brand2 "
            "that is already cancelled") in err
    rec = Store(db_url).get("one")
    assert rec is not None and rec.account == "brand2" and rec.state == "cancelled"
    assert "moved" not in (rec.spec or "")


def test_validate_refuses_a_key_repeated_across_files(tmp_path: Path, db_url: str) -> None:
    config = _config(tmp_path, db_url)
    a = _queue(tmp_path, "a.yaml", "shop")
    b = _queue(tmp_path, "b.yaml", "brand2")
    code, _, err = _run(config, "validate", str(a), str(b))
    assert code == 2 and f"{b}: post 1 (key one): field 'key': key one is also used in {a}" in err
    assert _run(config, "validate", str(a))[0] == 0


@pytest.mark.parametrize("url", ["mysql://user:hunter2@db.example.com/ig", "garbage", "sqlite:////proc/none/x.db",
                                 "postgresql://u:hunter2@127.0.0.1:1/none"])
def test_db_upgrade_with_an_unusable_url_says_one_line(tmp_path: Path, url: str) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"database": {"url": url}}))
    code, out, err = _run(config, "db", "upgrade")
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and err.startswith("igsched: cannot "), err
    assert "Traceback" not in err and "hunter2" not in err


def _read_only(db_url: str) -> str:
    if db_url.startswith("sqlite:///"):
        return f"sqlite:///file:{db_url.removeprefix('sqlite:///')}?mode=ro&uri=true"
    return db_url + "%20-cdefault_transaction_read_only%3Don"


def test_enqueue_on_a_read_only_database_prints_no_sql_and_no_values(tmp_path: Path, db_url: str) -> None:
    Store(db_url, upgrade=True)
    config = _config(tmp_path, _read_only(db_url))
    q = _queue(tmp_path, "a.yaml", "shop", caption="private-caption-text")
    code, out, err = _run(config, "enqueue", str(q))
    assert code == 1, (out, err)
    assert err.count("\n") == 1 and err.startswith("igsched: "), err
    assert "read" in err.lower() and "only" in err.lower()
    for leak in ("INSERT INTO", "SELECT ", "private-caption-text", "[parameters", "Traceback"):
        assert leak not in err and leak not in out


def test_a_failed_statement_never_carries_a_posts_values(db_url: str) -> None:
    """What the daemon logs when a write fails (a read-only or full database): the error,
    never the post's values."""
    import sqlalchemy as sa

    from tests.helpers import image_spec

    Store(db_url, upgrade=True)
    store = Store(_read_only(db_url))
    with pytest.raises(sa.exc.SQLAlchemyError) as info:
        store.enqueue([image_spec("ro", caption="private-caption-text")], "test")
    assert "private-caption-text" not in str(info.value)
