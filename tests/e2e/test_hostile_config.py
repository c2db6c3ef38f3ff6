"""A configuration file under hostile or broken conditions: one clear line naming the file
(and the key), exit 2, nothing quoted of a file that is not a configuration, never a
traceback or a hang."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from scheduler.cli import main
from tests.e2e.test_cli import SHOP

SHADOW = "zelda:$6$Zq9ab$hashedpasswordvalue:20228:0:99999:7:::\nyorick:*:20228:0:99999:7:::\n"


def _run(config: Path, *args: str) -> tuple[int, str]:
    r = CliRunner().invoke(main, ["--config", str(config), *args])
    assert r.exception is None or isinstance(r.exception, SystemExit), r.exception
    return r.exit_code, r.stdout + r.stderr


def _good(tmp: Path, **extra: object) -> dict[str, object]:
    return {"database": {"url": f"sqlite:///{tmp / 'db.sqlite'}"}, "accounts": [SHOP], **extra}


def test_a_config_that_is_another_programs_file_is_not_echoed(tmp_path: Path) -> None:
    shadow = tmp_path / "shadow"
    shadow.write_text(SHADOW)
    link = tmp_path / "config.yaml"
    link.symlink_to(shadow)
    for config in (shadow, link):
        code, out = _run(config, "status")
        assert code == 2
        assert "zelda" not in out and "hashedpassword" not in out and "yorick" not in out
        assert "is it the right file? (2 keys not shown)" in out


def test_invalid_yaml_in_a_config_is_located_not_quoted(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text('database:\n  url: "sqlite:///x.db"\npassword: "Sup3rS3cretValue\n')
    code, out = _run(config, "status")
    assert code == 2 and "Sup3rS3cret" not in out
    assert f"{config}: not valid YAML at line 4, column 1: found unexpected end of stream" in out


@pytest.mark.parametrize("kind", ["not utf-8", "fifo", "folder", "huge"])
def test_an_unusable_config_file_is_named(tmp_path: Path, kind: str) -> None:
    config = tmp_path / "config.yaml"
    if kind == "not utf-8":
        config.write_bytes(b'database:\n  url: "sqlite:////tmp/\xff.db"\n')
        expected = "the configuration is not UTF-8 text (byte 34)"
    elif kind == "fifo":
        os.mkfifo(config)
        expected = "configuration file is not a regular file"
    elif kind == "folder":
        config.mkdir()
        expected = "configuration file is not a regular file"
    else:
        config.write_text("# " + "x" * 2_000_000 + "\n")
        expected = "the configuration is larger than 1024 KiB; is it the right file?"
    code, out = _run(config, "status")
    assert code == 2 and expected in out and "Traceback" not in out


def test_a_section_written_twice_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(_good(tmp_path)) + "graph:\n  timeout_s: 5\ngraph:\n  timeout_s: 9\n")
    code, out = _run(config, "status")
    assert code == 2
    assert "'graph' is written twice in the same place (lines" in out


@pytest.mark.parametrize(("section", "values", "key"), [
    ("graph", {"base_url": "file:///etc/passwd"}, "graph.base_url"),
    ("graph", {"base_url": "javascript:alert(1)"}, "graph.base_url"),
    ("graph", {"base_url": "graph.instagram.com"}, "graph.base_url"),
    ("graph", {"base_url": "http://user:pw@127.0.0.1:1"}, "graph.base_url"),
    ("graph", {"api_version": "v23.0/../../_emulator/reset"}, "graph.api_version"),
    ("daemon", {"lease_s": float("inf")}, "daemon.lease_s"),
    ("daemon", {"lease_s": 1e15}, "daemon.lease_s"),
    ("daemon", {"tick_s": 1e15}, "daemon.tick_s"),
    ("daemon", {"workers": True}, "daemon.workers"),
    ("daemon", {"identity": "evil\x1b[31m\nfake: line"}, "daemon.identity"),
])
def test_values_that_would_break_the_daemon_later_are_refused_now(tmp_path: Path, section: str,
                                                                   values: dict[str, object], key: str) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(_good(tmp_path, **{section: values})))
    code, out = _run(config, "status")
    assert code == 2, out
    assert key in out and "pw@" not in out and "\x1b" not in out


def test_a_key_file_that_is_a_fifo_is_named_not_waited_on(tmp_path: Path) -> None:
    from scheduler.service.secrets import KeyFileError, read_key_file

    fifo = tmp_path / "igsched.key"
    os.mkfifo(fifo)  # nobody writes: opened the usual way, this would wait forever
    with pytest.raises(KeyFileError, match="not a regular file"):
        read_key_file(fifo)


@pytest.mark.parametrize("command", ["status", "list", "history", "tokens", "quota", "show key-1"])
def test_a_command_that_only_reads_creates_no_database(tmp_path: Path, command: str) -> None:
    db = tmp_path / "not" / "there" / "x.db"
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"database": {"url": f"sqlite:///{db}"}, "accounts": [SHOP]}))
    code, out = _run(config, *command.split())
    assert code == 1 and f"there is no database at {db}; run `igsched db upgrade`" in out
    assert not (tmp_path / "not").exists()


def test_the_same_instagram_account_under_two_names_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(_good(tmp_path) | {"accounts": [SHOP, {**SHOP, "name": "shop2"}]}))
    code, out = _run(config, "status")
    assert code == 2 and "accounts shop, shop2 have the same ig_user_id; give each account once" in out


def test_a_notify_command_that_cannot_be_found_is_a_startup_problem(tmp_path: Path) -> None:
    from scheduler.config import settings_from_dict, startup_problems

    settings = settings_from_dict(_good(tmp_path, notify=[{"command": ["/nonexistent/page-me"]},
                                                          {"command": ["true"]}]), "t")
    assert [p for p in startup_problems(settings) if "notify" in p] == [
        "notify target /nonexistent/page-me: no program '/nonexistent/page-me' to run (an absolute path, or one "
        "on PATH); its notifications fail until there is"]


@pytest.mark.parametrize(("args", "code", "said"), [
    (["--port", "99999"], 2, "99999 is not in the range 0<=x<=65535"),
    (["--host", "999.1.1.1", "--port", "0"], 1, "cannot serve the fake Graph API on 999.1.1.1:0"),
])
def test_the_emulator_refuses_an_address_it_cannot_serve_on_in_one_line(args: list[str], code: int,
                                                                       said: str) -> None:
    r = CliRunner().invoke(main, ["emulator", *args])
    assert r.exit_code == code and said in r.stdout + r.stderr
    assert r.exception is None or isinstance(r.exception, SystemExit)


@pytest.mark.parametrize(("text", "said"), [
    ("database:\n  url: \"x\x01\"\n", "the file contains a control character (#x0001) on line 2, which YAML does not allow"),
    ("queue:\n  settle_s: 2027-13-45\n", "not valid YAML: a value cannot be read (ValueError)"),
    ("graph: " + "[" * 50_000 + "\n", "not valid YAML: nested too deeply"),
])
def test_a_config_that_cannot_be_read_as_yaml_is_refused_in_one_line(tmp_path: Path, text: str, said: str) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(text)
    code, out = _run(config, "status")
    assert code == 2 and said in out and "Traceback" not in out


def test_yaml_merge_keys_are_not_taken_for_keys_written_twice(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(_good(tmp_path)) + (
        "x-base: &base {timeout_s: 5, login: auto}\n"
        "x-more: &more {<<: *base, timeout_s: 9}\n"  # a merge that overrides, merged again below
        "graph: {<<: *more, api_version: v24.0}\n").replace("x-base", "xbase").replace("x-more", "xmore"))
    code, out = _run(config, "status")
    assert "written twice" not in out
    config.write_text(yaml.safe_dump(_good(tmp_path)) + "graph:\n  <<: {timeout_s: 5}\n  <<: {login: auto}\n")
    code, out = _run(config, "status")
    assert code == 2 and "'<<' is written twice in the same place (lines" in out
    assert "(merge several with <<: [*a, *b])" in out


@pytest.mark.parametrize("url", ["https://graph.instagram.com\t", " https://graph.instagram.com",
                                 "https://gra ph.com"])
def test_a_base_url_with_blanks_is_refused(tmp_path: Path, url: str) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(_good(tmp_path, graph={"base_url": url})))
    code, out = _run(config, "status")
    assert code == 2 and "graph.base_url" in out and "must not contain spaces" in out
