"""Log lines: JSON and text, journald detection, and redaction of secrets."""

from __future__ import annotations

import io
import json
import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from scheduler.logformat import remember_secrets, setup_logging, under_journald

TOKEN = "IGAAabcdefghijklmnopqrstuvwxyz0123456789"
PLAIN_SECRET = "plain-configured-token-42"


@pytest.fixture
def root_restored() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for h in list(root.handlers):
        if h not in handlers:
            root.removeHandler(h)
    root.setLevel(level)


def _lines(stream: io.StringIO | io.TextIOWrapper) -> list[str]:
    stream.seek(0)
    return [line for line in stream.read().splitlines() if line]


def test_json_lines_have_level_logger_message_and_extras(
    root_restored: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    out = io.StringIO()
    setup_logging("INFO", "json", stream=out)
    remember_secrets([PLAIN_SECRET])
    log = logging.getLogger("scheduler.test")
    log.info("published %s\nsecond line", "spring", extra={"post_key": "spring", "attempt": 2})
    log.debug("not shown")
    try:
        raise RuntimeError(f"call failed with Bearer {TOKEN} and {PLAIN_SECRET}")
    except RuntimeError:
        log.exception("refresh failed", extra={"detail": f"access_token={TOKEN}"})
    lines = _lines(out)
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert first["level"] == "info" and first["logger"] == "scheduler.test"
    assert first["message"] == "published spring\nsecond line"
    assert first["post_key"] == "spring" and first["attempt"] == 2 and "time" in first
    assert second["level"] == "error" and "RuntimeError" in second["exception"]
    text = "\n".join(lines)
    assert TOKEN not in text and PLAIN_SECRET not in text and "[redacted]" in text


def test_under_journald_no_timestamp_and_a_priority_prefix(
    root_restored: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with open(tmp_path / "journal", "w+") as stream:
        st = os.fstat(stream.fileno())
        monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
        assert under_journald(stream)
        setup_logging("INFO", "text", stream=stream)
        logging.getLogger("scheduler.daemon").warning("paused shop for %d s", 600)
        setup_logging("INFO", "json", stream=stream)  # replaces our handler, not adds one
        logging.getLogger("scheduler.daemon").info("started", extra={"identity": "host1"})
        stream.flush()
        text_line, json_line = _lines(stream)
    assert text_line == "<4>WARNING scheduler.daemon: paused shop for 600 s"
    assert json_line.startswith("<6>{")
    doc = json.loads(json_line[3:])
    assert "time" not in doc and doc["identity"] == "host1"


def test_journal_stream_of_another_file_is_not_journald(
    root_restored: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOURNAL_STREAM", "1:2")
    out = io.StringIO()
    assert not under_journald(out)
    setup_logging("INFO", "text", stream=out)
    logging.getLogger("x").info("hello %s", TOKEN)
    (line,) = _lines(out)
    assert re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ INFO x: hello \[redacted\]$", line)
