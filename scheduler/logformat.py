"""Log lines: one per event, text or JSON, journald-aware, always through `redact`.

Under journald (stderr connected to the journal, which systemd announces in $JOURNAL_STREAM)
the journal stamps each line itself, so no timestamp of our own is written, and a `<N>` syslog
priority prefix lets `journalctl -p` filter by level. `log_format: json` writes one JSON object
per line (level, logger, message and any `extra=` fields) for log shippers.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, TextIO

from scheduler.redaction import RedactingFilter, redact, remember_secret

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}
_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3,
             logging.CRITICAL: 2}
QUIET_LOGGERS = ("httpx", "apscheduler", "aiohttp.access")


def remember_secrets(values: Iterable[str]) -> None:
    """Known secrets (e.g. configured tokens) are cut from every line, beyond the patterns
    (the one redaction seam: scheduler/redaction.py)."""
    for v in values:
        if v:
            remember_secret(v)


def _clean(text: str) -> str:
    return redact(text) or ""


def under_journald(stream: TextIO | None = None, environ: dict[str, str] | None = None) -> bool:
    """True when `stream` (stderr) is the journal stream systemd names in $JOURNAL_STREAM."""
    env = os.environ if environ is None else environ
    dev, sep, ino = env.get("JOURNAL_STREAM", "").partition(":")
    if not sep:
        return False
    try:
        st = os.fstat((stream or sys.stderr).fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return f"{st.st_dev}:{st.st_ino}" == f"{dev}:{ino}"


def _priority(levelno: int) -> int:
    return next((p for lvl, p in sorted(_PRIORITY.items(), reverse=True) if levelno >= lvl), 7)


class TextFormatter(logging.Formatter):
    def __init__(self, journald: bool) -> None:
        fmt = "%(levelname)s %(name)s: %(message)s"
        super().__init__(fmt if journald else "%(asctime)s " + fmt)
        self.journald = journald

    def format(self, record: logging.LogRecord) -> str:
        text = _clean(super().format(record))
        if self.journald:
            prefix = f"<{_priority(record.levelno)}>"
            text = "\n".join(prefix + line for line in text.split("\n"))
        return text


class JsonFormatter(logging.Formatter):
    """One JSON object per line; the line never holds a raw newline."""

    def __init__(self, journald: bool) -> None:
        super().__init__()
        self.journald = journald

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {}
        if not self.journald:
            doc["time"] = datetime.fromtimestamp(record.created, UTC).isoformat()
        doc["level"] = record.levelname.lower()
        doc["logger"] = record.name
        doc["message"] = _clean(record.getMessage())
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_") and key not in doc:
                doc[key] = _json_safe(value)
        if record.exc_info:
            doc["exception"] = _clean(self.formatException(record.exc_info))
        elif record.exc_text:
            doc["exception"] = _clean(record.exc_text)
        line = json.dumps(doc, ensure_ascii=False, default=str)
        return f"<{_priority(record.levelno)}>{line}" if self.journald else line


def _json_safe(value: Any) -> Any:
    if isinstance(value, str):
        return _clean(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    return _clean(str(value))


_HANDLER_NAME = "igsched"


def setup_logging(level: str = "INFO", fmt: str = "text", stream: TextIO | None = None) -> None:
    """Configure the root logger once per process (calling again replaces our handler)."""
    out = stream if stream is not None else sys.stderr
    journald = under_journald(out)
    handler = logging.StreamHandler(out)
    handler.set_name(_HANDLER_NAME)
    handler.addFilter(RedactingFilter())  # message, arguments and traceback, before formatting
    handler.setFormatter(JsonFormatter(journald) if fmt == "json" else TextFormatter(journald))
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
