"""The settings for running unattended: secrets, tokens, metrics, notify, log format."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from scheduler.config import NOTIFY_EVENTS, parse_listen, settings_from_dict
from scheduler.problems import InvalidInput


def _problems(doc: str) -> list[tuple[str | None, str]]:
    with pytest.raises(InvalidInput) as info:
        settings_from_dict(yaml.safe_load(doc), "config.yaml")
    return [(p.field, p.message) for p in info.value.problems]


def test_defaults() -> None:
    s = settings_from_dict({}, "config.yaml")
    assert s.secrets.key_file is None and s.tokens.refresh_days_left == 30
    assert s.metrics.listen is None and s.notify == [] and s.log_format == "text"
    assert s.notifications.late_after_s == 300


def test_notify_targets_from_yaml_with_a_bare_on_key(tmp_path: Path) -> None:
    secret = tmp_path / "notify-secret"
    secret.write_text("s3cret\n")
    s = settings_from_dict(yaml.safe_load(f"""
notify:
  - url: https://hooks.example.com/igsched?team=a
    secret_file: {secret}
    on: [post_failed, needs_reauth]
  - url: http://[::1]:8080/hook
  - command: [/usr/local/bin/page-me, --urgent]
    timeout_s: 5
"""), "config.yaml")
    hook, local, cmd = s.notify
    assert hook.on == ["post_failed", "needs_reauth"] and hook.secret() == b"s3cret"
    assert hook.label() == "https://hooks.example.com/igsched"  # no query in logs
    assert local.on == list(NOTIFY_EVENTS) and local.secret() is None
    assert cmd.command == ["/usr/local/bin/page-me", "--urgent"] and cmd.timeout_s == 5


@pytest.mark.parametrize(
    ("doc", "field", "words"),
    [
        ("notify: [{url: http://hooks.example.com/x}]", "notify[0].url", "https"),
        ("notify: [{url: ftp://hooks.example.com/x}]", "notify[0].url", "https"),
        ("notify: [{url: 'https://u:p@hooks.example.com/'}]", "notify[0].url", "credentials"),
        ("notify: [{url: https://a.example/, command: [x]}]", "notify[0]", "exactly one"),
        ("notify: [{}]", "notify[0]", "exactly one"),
        ("notify: [{command: []}]", "notify[0].command", "at least 1"),
        ("notify: [{command: [x], secret_env: S}]", "notify[0]", "url targets only"),
        ("notify: [{url: https://a.example/, secret_env: S, secret_file: /f}]", "notify[0]",
         "not both"),
        ("notify: [{url: https://a.example/, on: [post_deleted]}]", "notify[0].on[0]", "post_failed"),
        ("notify: [{url: https://a.example/, colour: red}]", "notify[0].colour", "unknown key"),
        ("metrics: {listen: 9464}", "metrics.listen", "string"),
        ("metrics: {listen: 'localhost:http'}", "metrics.listen", "host:port"),
        ("tokens: {refresh_days_left: 60}", "tokens.refresh_days_left", "less than 60"),
        ("log_format: xml", "log_format", "text"),
        ("notifications: {late_after_s: 0}", "notifications.late_after_s", "greater than 0"),
        ("secrets: {key: abc}", "secrets.key", "unknown key"),
    ],
)
def test_bad_settings_name_their_key(doc: str, field: str, words: str) -> None:
    problems = _problems(doc)
    assert any(f == field and words in m for f, m in problems), problems


def test_missing_notify_secret_names_the_variable_not_a_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("IGSCHED_NOTIFY_SECRET", raising=False)
    s = settings_from_dict(
        {"notify": [{"url": "https://a.example/h", "secret_env": "IGSCHED_NOTIFY_SECRET"}]}, "c"
    )
    with pytest.raises(Exception, match="IGSCHED_NOTIFY_SECRET is not set"):
        s.notify[0].secret()


@pytest.mark.parametrize(
    ("value", "expected"),
    [("127.0.0.1:9464", ("127.0.0.1", 9464)), ("[::1]:9464", ("::1", 9464)),
     ("0.0.0.0:0", ("0.0.0.0", 0))],
)
def test_parse_listen(value: str, expected: Any) -> None:
    assert parse_listen(value) == expected
    with pytest.raises(ValueError):
        parse_listen(":9464")
