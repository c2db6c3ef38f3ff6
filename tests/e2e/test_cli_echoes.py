"""What the command line echoes of hostile input: no configured secret (a token written where
an account name goes), no line of a file that is not a queue file (a mistyped path, a link to
a file of secrets), and no stored text that prints lines or colours of its own."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from scheduler.cli import main
from scheduler.problems import plain
from scheduler.store import Store
from tests.e2e.test_cli import AT, SHOP

TOKEN = "shop-token-7d1f0c9e"  # not token-shaped: only being remembered as configured can cut it
APP_SECRET = "app-secret-5be2a4"
VERIFY = "verify-token-91c3aa"
SHADOW = "zelda:$6$Zq9ab$hashedpasswordvalue:20228:0:99999:7:::\nyorick:*:20228:0:99999:7:::\n"


@pytest.fixture(autouse=True)
def secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IGSCHED_TEST_TOKEN_SHOP", TOKEN)
    monkeypatch.setenv("IGSCHED_TEST_APP_SECRET", APP_SECRET)
    monkeypatch.setenv("IGSCHED_TEST_VERIFY", VERIFY)


def _config(tmp: Path, db_url: str) -> Path:
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump({
        "database": {"url": db_url}, "accounts": [SHOP],
        "webhooks": {"app_secret_env": "IGSCHED_TEST_APP_SECRET", "verify_token_env": "IGSCHED_TEST_VERIFY"},
    }))
    return path


def _run(config: Path, *args: str) -> tuple[int, str, str]:
    r = CliRunner().invoke(main, ["--config", str(config), *args])
    assert r.exception is None or isinstance(r.exception, SystemExit), r.exception
    return r.exit_code, r.stdout, r.stderr


def _one_post(path: Path, key: str, image: str) -> Path:
    """A queue file of one post of account shop, in a folder of its own."""
    path.parent.mkdir(exist_ok=True)
    path.write_text(yaml.safe_dump({"account": "shop", "posts": [{"key": key, "at": AT, "image": image}]}))
    return path


def _posts(db_url: str) -> int:
    return len(Store(db_url).list_posts(["planned"]))


@pytest.mark.parametrize("command", ["validate", "enqueue"])
def test_a_secret_written_in_a_queue_file_is_not_echoed(tmp_path: Path, db_url: str, command: str) -> None:
    config = _config(tmp_path, db_url)
    queue = tmp_path / "q.yaml"
    queue.write_text(yaml.safe_dump({"account": TOKEN, "timezone": APP_SECRET, "posts": [
        {"key": "a", "at": AT, "image": f"https://me:{VERIFY}@cdn.example.com/a.jpg"},
        {"key": "b", "at": AT, "image": "https://bob:hunter2@cdn.example.com/b.jpg"},
        {"key": "c", "at": AT, "image": "https://cdn.example.com/c.jpg", "account": "EAAB" + "x" * 40},
    ]}))
    code, out, err = _run(config, command, str(queue))
    assert code == 2
    for secret in (TOKEN, APP_SECRET, VERIFY, "hunter2", "EAAB"):
        assert secret not in out + err, secret
    # each problem still names its file, post and field
    assert f"{queue}: field 'account': account '[redacted]' is not configured" in err
    assert f"{queue}: field 'timezone'" in err
    assert f"{queue}: post 2 (key b): field 'image': image https://bob:[redacted]@cdn.example.com/b.jpg" in err
    assert _posts(db_url) == 0


def _foreign(tmp: Path) -> list[Path]:
    target = tmp / "outside" / "shadow"
    target.parent.mkdir()
    target.write_text(SHADOW)
    link = tmp / "link.yaml"
    link.symlink_to(target)
    return [target, link]


@pytest.mark.parametrize("command", ["validate", "enqueue"])
def test_a_file_that_is_not_a_queue_file_is_refused_without_its_lines(tmp_path: Path, db_url: str,
                                                                      command: str) -> None:
    config = _config(tmp_path, db_url)
    for path in _foreign(tmp_path):
        code, out, err = _run(config, command, str(path))
        assert code == 2
        assert "zelda" not in out + err and "hashedpassword" not in out + err and "yorick" not in out + err
        assert f"{path}: none of its 2 top-level keys is one this file takes (account, timezone, posts, " \
               "messages): is it the right file? (2 keys not shown)" in err
    assert _posts(db_url) == 0


def test_a_message_file_that_is_not_one_is_refused_without_its_lines(tmp_path: Path, db_url: str) -> None:
    config = _config(tmp_path, db_url)
    for path in _foreign(tmp_path):
        # --to adds a key of its own: the file's keys are judged before that
        code, out, err = _run(config, "message", "send", "--account", "shop", "--to", "123", "--file", str(path))
        assert code == 2
        assert "zelda" not in out + err and "hashedpassword" not in out + err
        assert "is it the right file? (2 keys not shown)" in err


def test_a_near_miss_of_a_key_is_still_named_with_its_fix(tmp_path: Path, db_url: str) -> None:
    config = _config(tmp_path, db_url)
    queue = tmp_path / "typo.yaml"
    queue.write_text(yaml.safe_dump({"account": "shop", "post": [{"key": "a", "at": AT}]}))
    code, _, err = _run(config, "validate", str(queue))
    assert code == 2 and "unknown key 'post' (did you mean 'posts'?)" in err
    # no key right: the near misses are named with their fix, the others only counted (a
    # file of another program's may hold a key that looks like one of ours beside its secrets)
    queue.write_text(yaml.safe_dump({"acount": "shop", "hosts": 1, "db_password_hunter2": 1}))
    code, _, err = _run(config, "validate", str(queue))
    assert code == 2
    assert ("none of its 3 top-level keys is one this file takes (account, timezone, posts, messages); "
            "'acount': did you mean 'account'?; 'hosts': did you mean 'posts'? (1 key not shown)") in err
    assert "hunter2" not in err


def test_show_prints_a_file_name_with_line_breaks_on_one_line(tmp_path: Path, db_url: str) -> None:
    config = _config(tmp_path, db_url)
    forged = _one_post(tmp_path / "q" / "a\nstate          published\n\x1b[32mok.yaml", "forge-1",
                       "https://cdn.example.com/a.jpg")
    assert _run(config, "enqueue", str(forged))[0] == 0
    code, out, _ = _run(config, "show", "forge-1")
    assert code == 0
    lines = out.splitlines()
    assert [line for line in lines if line.startswith("state ")] == ["state          planned"]
    assert "\x1b" not in out
    assert any(line.startswith("source_file") and "\\nstate          published\\n\\x1b[32mok.yaml" in line
               for line in lines)
    code, out, _ = _run(config, "list")
    assert code == 0 and "\x1b" not in out


def test_plain_keeps_text_whole_on_one_line() -> None:
    assert plain("a\nb\x1b[31mc") == "a\\nb\\x1b[31mc"
    long = "é" * 5000 + "\n"
    assert plain(long) == "é" * 5000 + "\\n"  # not cut: a stored text is shown whole


def test_an_unknown_key_of_any_length_is_quoted_short(tmp_path: Path, db_url: str) -> None:
    config = _config(tmp_path, db_url)
    queue = tmp_path / "long.yaml"
    queue.write_text(yaml.safe_dump({"account": "shop", "k" * 5000: 1, "posts": [
        {"key": "a", "at": AT, "image": "https://cdn.example.com/a.jpg"}]}))
    code, _, err = _run(config, "validate", str(queue))
    assert code == 2
    # the reason survives the cut: the key is shortened, not the line
    assert "; allowed here: account, timezone, posts, messages" in err
    assert "k" * 81 not in err


def test_a_secret_written_as_a_long_key_is_cut_out_before_the_key_is_shortened(tmp_path: Path,
                                                                             db_url: str) -> None:
    config = _config(tmp_path, db_url)
    long_secret = "forward-key-" + "Zx9" * 40  # configured as the app secret, 132 characters
    (tmp_path / "secret").write_text(long_secret + "\n")
    cfg = yaml.safe_load(config.read_text())
    cfg["webhooks"] = {"app_secret_file": str(tmp_path / "secret"), "verify_token_env": "IGSCHED_TEST_VERIFY"}
    config.write_text(yaml.safe_dump(cfg))
    queue = tmp_path / "q.yaml"
    queue.write_text(yaml.safe_dump({"account": "shop", long_secret: 1, "posts": [
        {"key": "a", "at": AT, "image": "https://cdn.example.com/a.jpg"}]}))
    code, _, err = _run(config, "validate", str(queue))
    assert code == 2 and "unknown key '[redacted]'" in err
    assert "Zx9Zx9" not in err


def test_a_short_hand_made_secret_does_not_cut_words_from_messages(tmp_path: Path, db_url: str,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IGSCHED_TEST_VERIFY", "test")  # weak, and warned about when the daemon starts
    config = _config(tmp_path, db_url)
    queue = _one_post(tmp_path / "test" / "contest.yaml", "test-launch", "ftp://cdn.example.com/latest.png")
    code, _, err = _run(config, "validate", str(queue))
    assert code == 2
    assert f"{queue}: post 1 (key test-launch): field 'image': image ftp://cdn.example.com/latest.png" in err


@pytest.mark.parametrize("kind", ["fifo", "not utf-8", "huge"])
def test_an_unusable_secret_file_never_hangs_or_breaks_a_command(tmp_path: Path, db_url: str, kind: str) -> None:
    config = _config(tmp_path, db_url)
    secret = tmp_path / "secret"
    if kind == "fifo":
        os.mkfifo(secret)  # nobody writes: opening it the usual way would wait forever
    elif kind == "not utf-8":
        secret.write_bytes(b"\xff\xfe secret")
    else:
        secret.write_bytes(b"x" * 10_000_000)
    cfg = yaml.safe_load(config.read_text())
    cfg["webhooks"] = {"app_secret_file": str(secret), "verify_token_env": "IGSCHED_TEST_VERIFY"}
    config.write_text(yaml.safe_dump(cfg))
    code, out, err = _run(config, "list")
    assert code == 0, err
    assert "Traceback" not in out + err and "xff" not in out + err
