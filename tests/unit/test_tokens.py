"""Tokens (README "Security"): one line, refused otherwise with the account named and the
value never shown; and whatever text carries a token passes the one redaction seam."""

from __future__ import annotations

import io
import logging
import os
from pathlib import Path

import pytest

from scheduler.config import AccountSettings, TokenMissing, settings_from_dict, startup_problems
from scheduler.redaction import RedactingFilter, redact, remember_secret

TOKEN = "IGQVJabc123secretvalue=="


def _file_account(tmp_path: Path, content: bytes, name: str = "shop") -> AccountSettings:
    path = tmp_path / f"{name}.token"
    path.write_bytes(content)
    path.chmod(0o600)
    return AccountSettings(name=name, ig_user_id="1", token_file=path)


@pytest.mark.parametrize("content", [TOKEN.encode(), TOKEN.encode() + b"\n", TOKEN.encode() + b"\r\n"])
def test_one_trailing_newline_is_dropped(tmp_path: Path, content: bytes) -> None:
    assert _file_account(tmp_path, content).token() == TOKEN


@pytest.mark.parametrize(
    ("content", "what"),
    [
        (b"abc==\n# rotated\n", "a line break (character 6)"),
        (TOKEN.encode() + b"\n\n", "a line break"),
        (b" " + TOKEN.encode(), "a space (character 1)"),
        (TOKEN.encode() + b"\tx", "a space"),
        (TOKEN.encode() + b"\x00", "a control character"),
        (b"\n", "is empty"),
        (b"\xff\xfe", "is not text"),
    ],
)
def test_anything_but_one_line_is_refused_naming_the_account_not_the_value(
    tmp_path: Path, content: bytes, what: str
) -> None:
    with pytest.raises(TokenMissing) as info:
        _file_account(tmp_path, content).token()
    message = str(info.value)
    assert message.startswith("account shop: ") and what in message
    for part in (b"abc==", b"rotated", TOKEN.encode()):
        assert part.decode() not in message


def test_token_from_the_environment_follows_the_same_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    acct = AccountSettings(name="shop", ig_user_id="1", token_env="IGSCHED_T")
    monkeypatch.setenv("IGSCHED_T", TOKEN + "\n")
    assert acct.token() == TOKEN
    monkeypatch.setenv("IGSCHED_T", "abc==\n# rotated")
    with pytest.raises(TokenMissing, match="environment variable IGSCHED_T contains a line break"):
        acct.token()


def test_redaction_finds_a_token_as_a_transport_library_quotes_it() -> None:
    secret = "abc==\n# rotated"
    text = f"Illegal header value b'Bearer {secret.encode()!r}'; also {secret!r} and %0A"
    cleaned = redact(text, [secret]) or ""
    assert "abc==" not in cleaned and "rotated" not in cleaned


def test_a_remembered_token_is_redacted_from_log_lines_and_tracebacks() -> None:
    remember_secret("tok-remembered-1234")
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger("test.redaction")
    logger.addHandler(handler)
    try:
        try:
            raise ValueError("header Authorization: Bearer tok-remembered-1234 refused")
        except ValueError:
            logger.exception("call failed with %s", "tok-remembered-1234")
    finally:
        logger.removeHandler(handler)
    assert "tok-remembered-1234" not in out.getvalue()
    assert "[redacted]" in out.getvalue() and "ValueError" in out.getvalue()


def test_startup_problems_name_each_account_and_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("IGSCHED_UNSET", raising=False)
    open_file = tmp_path / "open.token"
    open_file.write_text(TOKEN + "\n")
    open_file.chmod(0o644)
    two_lines = tmp_path / "two.token"
    two_lines.write_text("abc==\n# rotated\n")
    settings = settings_from_dict({
        "accounts": [
            {"name": "env", "ig_user_id": "1", "token_env": "IGSCHED_UNSET"},
            {"name": "missing", "ig_user_id": "2", "token_file": str(tmp_path / "nope")},
            {"name": "open", "ig_user_id": "3", "token_file": str(open_file)},
            {"name": "two", "ig_user_id": "4", "token_file": str(two_lines)},
        ],
        "queue": {"inbox_dir": str(tmp_path / "no-inbox")},
    }, "test")
    found = startup_problems(settings)
    assert found == [
        "account env: environment variable IGSCHED_UNSET is not set",
        f"account missing: cannot read token_file {tmp_path / 'nope'}: No such file or directory",
        f"account open: token_file {open_file} can be read by every user of this host (mode 0644); chmod 600 it",
        f"account two: the token in token_file {two_lines} contains a line break (character 6); "
        "a token is one line of visible characters: write only the token",
        f"queue.inbox_dir {tmp_path / 'no-inbox'} is not a folder that exists; nothing is imported from it until it is",
    ]
    assert startup_problems(settings_from_dict({}, "t")) == [
        "no accounts are configured (accounts:); no post can be published"]


def test_a_short_or_unreadable_webhook_secret_is_a_startup_problem(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IGSCHED_SHORT_VERIFY", "test")
    os.mkfifo(tmp_path / "fifo")  # nobody writes: read without care, it would wait forever
    settings = settings_from_dict({"webhooks": {"verify_token_env": "IGSCHED_SHORT_VERIFY",
                                                "app_secret_file": str(tmp_path / "fifo")}}, "t")
    assert startup_problems(settings)[1:] == [
        "webhooks verify token is shorter than 12 characters: easy to guess, and cut from every log line "
        "(a word like it in a message would be too); use e.g. the output of `openssl rand -hex 16`",
        f"webhooks app secret: cannot read {tmp_path / 'fifo'}: not a regular file",
    ]


def test_an_unknown_log_level_is_a_configuration_error() -> None:
    from scheduler.problems import InvalidInput

    with pytest.raises(InvalidInput) as info:
        settings_from_dict({"log_level": "BANANA"}, "c.yaml")
    (p,) = info.value.problems
    assert p.field == "log_level" and "unknown log level 'BANANA'" in p.message
    assert settings_from_dict({"log_level": "debug"}, "c.yaml").log_level == "DEBUG"
