"""The webhooks: and rules: settings: sources of secrets, URLs, listen addresses, rule checks,
and YAML 1.1's bare `on` read as a key."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from scheduler.config import (
    SecretMissing,
    Settings,
    check_outbound_url,
    load_settings,
    parse_listen,
    settings_from_dict,
)
from scheduler.problems import InvalidInput

EXAMPLE = Path(__file__).resolve().parents[2] / "config.example.yaml"
ACCOUNTS = [{"name": "shop", "ig_user_id": "17841400000000000", "token_env": "T"}]
DESIGN_YAML = """
accounts:
  - {name: shop, ig_user_id: "17841400000000000", token_env: IGSCHED_TOKEN_SHOP}
preflight:
  enabled: no
webhooks:
  listen: 127.0.0.1:8788
  path: /webhooks/instagram
  verify_token_env: IGSCHED_WEBHOOK_VERIFY_TOKEN
  app_secret_env: IGSCHED_APP_SECRET
  forward:
    - url: https://n8n.example.com/webhook/instagram
      secret_env: IGSCHED_FORWARD_SECRET
rules:
  - name: sale-code
    on: comment
    account: shop
    media: "17895695668004550"
    match: "sale|discount"
    private_reply: "Here's 20 % off: SAVE20"
    reply: "Check your DMs"
    hide: false
"""


def _settings(**extra: object) -> Settings:
    return settings_from_dict({"accounts": ACCOUNTS, **extra}, "config.yaml")


def _problems(**extra: object) -> list[str]:
    with pytest.raises(InvalidInput) as e:
        _settings(**extra)
    return [str(p) for p in e.value.problems]


def test_the_documented_configuration_loads_with_on_as_a_key(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(DESIGN_YAML)
    s = load_settings(path)
    rule = s.rules[0]
    assert (rule.name, rule.on, rule.account, rule.media) == (
        "sale-code", "comment", "shop", "17895695668004550")
    assert rule.pattern() is not None and rule.pattern().search("Big SALE today")  # type: ignore[union-attr]
    assert s.webhooks.listen_address() == ("127.0.0.1", 8788)
    assert s.webhooks.forward[0].secret_env == "IGSCHED_FORWARD_SECRET"
    # values keep their YAML 1.1 meaning: only keys are read as written
    assert s.preflight.enabled is False


def test_on_read_as_true_by_another_yaml_parser_is_accepted() -> None:
    s = _settings(rules=[{"name": "r", True: "message", "message": "hi"}])
    assert s.rules[0].on == "message"


def test_the_commented_example_rule_is_valid() -> None:
    text = EXAMPLE.read_text()
    block = text.split("rules: []", 1)[1].split("\n\n", 1)[0]
    lines = [ln[1:] for ln in block.splitlines()[1:] if ln.startswith("#   ")]
    import yaml

    s = _settings(rules=yaml.safe_load("\n".join(lines)))
    assert s.rules[0].name == "sale-code"


def test_defaults_leave_the_receiver_off() -> None:
    s = _settings()
    assert s.webhooks.listen_address() is None
    assert s.rules == []


@pytest.mark.parametrize(
    ("rule", "fragment"),
    [
        ({"on": "comment", "match": "sale(", "reply": "x"}, "not a valid regular expression"),
        ({"on": "comment"}, "needs at least one action"),
        ({"on": "message", "hide": True}, "hide cannot act on a message event"),
        ({"on": "comment", "message": "x"}, "message cannot act on a comment event"),
        ({"on": "mention", "private_reply": "x"}, "private_reply cannot act on a mention"),
        ({"on": "postback", "media": "1", "message": "x"}, "media applies only"),
        ({"on": "comment", "account": "other", "reply": "x"}, "account 'other' is not configured"),
        ({"on": "like", "reply": "x"}, "rules[0].on"),
        ({"on": "comment", "reply": "x", "colour": "red"}, "unknown key"),
        ({"on": "message", "message": "é" * 501}, "longer than 1000 bytes"),
    ],
)
def test_bad_rules_are_refused_with_their_place(rule: dict[str, object], fragment: str) -> None:
    problems = _problems(rules=[{"name": "r1", **rule}])
    assert any(fragment in p for p in problems), problems
    assert all(p.startswith("config.yaml: ") for p in problems)


def test_rule_names_are_unique() -> None:
    rule = {"name": "same", "on": "comment", "reply": "x"}
    assert any("repeated: same" in p for p in _problems(rules=[rule, rule]))


def test_a_rule_name_cannot_hold_a_colon() -> None:  # it is part of the action key
    assert _problems(rules=[{"name": "a:b", "on": "comment", "reply": "x"}])


@pytest.mark.parametrize(
    "url",
    ["https://n8n.example.com/webhook/x", "http://127.0.0.1:5678/x", "http://[::1]:80/",
     "http://localhost:8080/hook"],
)
def test_forward_urls_https_or_loopback(url: str) -> None:
    assert check_outbound_url(url) == url


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("http://n8n.example.com/x", "must be https"),
        ("ftp://127.0.0.1/x", "must be https"),
        ("https://user:pw@n8n.example.com/x", "no credentials"),
        ("https:///x", "needs a host"),
        ("https://example.com:99999/", "not a usable URL"),
    ],
)
def test_forward_urls_refused(url: str, fragment: str) -> None:
    with pytest.raises(ValueError, match=re.escape(fragment)):
        check_outbound_url(url)
    problems = _problems(webhooks={"forward": [{"url": url, "secret_env": "S"}]})
    assert any("webhooks.forward[0].url" in p for p in problems), problems


def test_a_forward_needs_one_secret_source() -> None:
    assert _problems(webhooks={"forward": [{"url": "https://a.example/x"}]})
    both = {"url": "https://a.example/x", "secret_env": "S", "secret_file": "/f"}
    assert _problems(webhooks={"forward": [both]})


@pytest.mark.parametrize(
    ("value", "expected"),
    [("127.0.0.1:8788", ("127.0.0.1", 8788)), ("[::1]:0", ("::1", 0)),
     ("localhost:80", ("localhost", 80))],
)
def test_listen_addresses(value: str, expected: tuple[str, int]) -> None:
    assert parse_listen(value) == expected


@pytest.mark.parametrize("value", ["8788", "127.0.0.1", "host:99999", "a b:1", ":80", "[x]:1"])
def test_bad_listen_addresses(value: str) -> None:
    problems = _problems(webhooks={"listen": value, "app_secret_env": "A",
                                   "verify_token_env": "V"})
    assert any("webhooks.listen" in p for p in problems), problems


def test_listening_needs_both_secrets() -> None:
    assert any("app_secret" in p for p in _problems(webhooks={"listen": "127.0.0.1:1",
                                                              "verify_token_env": "V"}))
    assert any("verify_token" in p for p in _problems(webhooks={"listen": "127.0.0.1:1",
                                                                "app_secret_env": "A"}))
    assert _problems(webhooks={"app_secret_env": "A", "app_secret_file": "/x"})


def test_secrets_are_read_when_asked_and_never_shown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text("file-secret-value\n")
    monkeypatch.setenv("IGS_TEST_VERIFY", "verify-value")
    s = _settings(webhooks={
        "app_secret_file": str(secret_file), "verify_token_env": "IGS_TEST_VERIFY",
        "forward": [{"url": "https://relay.example/hook/abc", "secret_env": "IGS_TEST_UNSET"}],
    })
    assert s.webhooks.app_secret() == "file-secret-value"
    assert s.webhooks.verify_token() == "verify-value"
    assert "file-secret-value" not in repr(s) and "verify-value" not in repr(s)
    monkeypatch.delenv("IGS_TEST_UNSET", raising=False)
    with pytest.raises(SecretMissing) as e:
        s.webhooks.forward[0].secret()
    assert "IGS_TEST_UNSET" in str(e.value)
    assert "/hook/abc" not in str(e.value)  # a webhook URL's path can be a secret itself
    secret_file.write_text("")
    with pytest.raises(SecretMissing, match="is empty"):
        s.webhooks.app_secret()
