"""Encryption at rest: key files, their modes, creation races and wrong keys."""

from __future__ import annotations

import base64
import logging
import os
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from scheduler.service.secrets import (
    KEY_FILE_NAME,
    KeyFileError,
    WrongKey,
    create_key_file,
    load_cipher,
    read_key_file,
    state_dir,
)

TOKEN = "IGAAsecret-token-value-0123456789"


def test_key_is_created_private_in_the_sqlite_directory_and_said_where(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    url = f"sqlite:///{tmp_path}/data/igsched.db"
    with caplog.at_level(logging.INFO, logger="scheduler.service.secrets"):
        cipher = load_cipher(None, url)
    key = tmp_path / "data" / KEY_FILE_NAME
    assert cipher.key_file == key
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert [r for r in caplog.records if str(key) in r.getMessage()]
    assert os.listdir(key.parent) == [KEY_FILE_NAME]  # no temporary file left behind
    # the second start reads the same key: what was stored stays readable
    blob = cipher.encrypt(TOKEN)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="scheduler.service.secrets"):
        again = load_cipher(None, url)
    assert again.decrypt(blob) == TOKEN and not caplog.records


def test_ciphertext_does_not_contain_the_token(tmp_path: Path) -> None:
    create_key_file(tmp_path / "k")
    cipher = read_key_file(tmp_path / "k")
    blob = cipher.encrypt(TOKEN)
    assert TOKEN not in blob and blob.isascii()
    assert cipher.encrypt(TOKEN) != blob  # a fresh nonce each time
    assert TOKEN not in repr(cipher)


def test_wrong_key_names_the_key_file_never_the_token(tmp_path: Path) -> None:
    create_key_file(tmp_path / "a")
    create_key_file(tmp_path / "b")
    blob = read_key_file(tmp_path / "a").encrypt(TOKEN)
    with pytest.raises(WrongKey) as info:
        read_key_file(tmp_path / "b").decrypt(blob, "the token of account shop")
    message = str(info.value)
    assert str(tmp_path / "b") in message and "account shop" in message
    assert TOKEN not in message and blob not in message
    with pytest.raises(WrongKey):
        read_key_file(tmp_path / "a").decrypt("not-a-fernet-token")


def test_rotation_first_key_encrypts_every_key_decrypts(tmp_path: Path) -> None:
    create_key_file(tmp_path / "old")
    old = read_key_file(tmp_path / "old")
    blob = old.encrypt(TOKEN)
    new_key = base64.standard_b64encode(os.urandom(32)).decode()  # openssl rand -base64 32
    both = tmp_path / "both"
    both.write_text(f"# rotated\n{new_key}\n{(tmp_path / 'old').read_text()}")
    rotated = read_key_file(both)
    assert rotated.decrypt(blob) == TOKEN
    with pytest.raises(WrongKey):
        old.decrypt(rotated.encrypt(TOKEN))


def test_configured_key_file_must_exist_and_be_a_key(tmp_path: Path) -> None:
    missing = tmp_path / "creds" / "igsched-key"
    with pytest.raises(KeyFileError, match=str(missing)):
        load_cipher(missing, "sqlite:///x.db")
    assert not missing.exists()  # never silently replaced by a new key
    bad = tmp_path / "bad"
    bad.write_text("hunter2\n")
    with pytest.raises(KeyFileError, match=r"bad, line 1: not a key"):
        read_key_file(bad)
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(KeyFileError, match="holds no key"):
        read_key_file(empty)


def test_world_readable_key_file_is_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "k"
    create_key_file(path)
    path.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="scheduler.service.secrets"):
        read_key_file(path)
    assert any("chmod 600" in r.getMessage() for r in caplog.records)


def test_creation_never_replaces_an_existing_key(tmp_path: Path) -> None:
    path = tmp_path / "k"
    assert create_key_file(path) is True
    first = path.read_bytes()
    assert create_key_file(path) is False
    assert path.read_bytes() == first


def test_concurrent_first_use_agrees_on_one_key(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/igsched.db"
    os.environ.pop("STATE_DIRECTORY", None)
    with ThreadPoolExecutor(8) as pool:
        ciphers = list(pool.map(lambda _: load_cipher(None, url), range(8)))
    blob = ciphers[0].encrypt(TOKEN)
    assert all(c.decrypt(blob) == TOKEN for c in ciphers)


def test_state_dir_choice(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path)}
    assert state_dir("sqlite:////var/lib/igsched/igsched.db", env) == Path("/var/lib/igsched")
    assert state_dir("sqlite:////var/lib/igsched/x.db", {"STATE_DIRECTORY": "/s/a:/s/b"}) == Path(
        "/s/a"
    )
    assert state_dir("postgresql+psycopg://u@h/db", env) == tmp_path / ".local/state/igsched"
    assert state_dir("sqlite://", {"XDG_STATE_HOME": "/xdg"}) == Path("/xdg/igsched")


def test_a_key_made_for_a_shared_database_says_every_daemon_needs_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "state"))
    with caplog.at_level(logging.WARNING, logger="scheduler.service.secrets"):
        cipher = load_cipher(None, "postgresql+psycopg://igsched@db/igsched")
    assert cipher.key_file == tmp_path / "state" / KEY_FILE_NAME
    assert "every daemon sharing this database needs this key" in caplog.text
