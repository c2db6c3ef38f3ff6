"""The one redaction seam: every text that may carry a token (an exception's message, a
header, a URL) passes through `redact` before it reaches a database row, a log line or the
terminal (README "Security").

Tokens read from the configuration are remembered here as they are read, so even a message
no caller thought of (a transport library quoting the Authorization header it refused) loses
them; the patterns catch token-shaped text that was never configured.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable
from urllib.parse import quote

REDACTED = "[redacted]"
MIN_SECRET_CHARS = 4  # tiny "secrets" would shred ordinary text
# Belt and braces beyond the known secrets: query-string tokens and token-shaped strings
# (Facebook tokens start with EAA, Instagram ones with IGQV, IGQW or IGAA).
_TOKEN_PATTERNS = (
    re.compile(r"(access_token=)[^&\s\"']+", re.IGNORECASE),
    re.compile(r"\b((?:Bearer|OAuth)\s+)[A-Za-z0-9_\-.|=]{20,}", re.IGNORECASE),
    re.compile(r"\b(?:EAA|IGQ[VW]|IGAA)[A-Za-z0-9_\-]{20,}"),
    # a URL's password (scheme://user:password@host), in a message quoting a URL as written
    re.compile(r"(\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s/:@]*:)[^\s/@]+(?=@)"),
)

_known: set[str] = set()
_lock = threading.Lock()


def _forms(secret: str) -> set[str]:
    """The secret as it may appear in text: as is, escaped as Python/httpx show bytes and
    strings (b'…\\n…'), percent-encoded, and line by line (a message may quote one line)."""
    forms = {secret, secret.encode("unicode_escape").decode("ascii"), repr(secret)[1:-1]}
    forms.add(secret.encode("utf-8", "backslashreplace").hex())
    forms.add(quote(secret, safe=""))
    forms.update(line.strip() for line in secret.splitlines())
    return {f for f in forms if len(f) >= MIN_SECRET_CHARS}


def remember_secret(secret: str) -> None:
    """Note a secret (a token just read) so that every later redaction removes it."""
    forms = _forms(secret)
    with _lock:
        _known.update(forms)


def redact(text: str | None, secrets: Iterable[str] = ()) -> str | None:
    """Remove secrets (the given ones and every remembered one) from a text meant for logs,
    exceptions or the database."""
    if text is None:
        return None
    with _lock:
        known = set(_known)
    for secret in secrets:
        if secret:
            known |= _forms(secret)
    for form in sorted(known, key=len, reverse=True):  # longest first: no partial leftovers
        text = text.replace(form, REDACTED)
    for pattern in _TOKEN_PATTERNS:
        text = pattern.sub(lambda m: (m.group(1) if m.groups() else "") + REDACTED, text)
    return text


class RedactingFilter(logging.Filter):
    """Redacts every log record (message, arguments and traceback) before any handler
    writes it."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: log what there is
            message = str(record.msg)
        record.msg, record.args = redact(message) or "", None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def install_log_redaction(logger: logging.Logger | None = None) -> None:
    """Put the RedactingFilter on every handler of `logger` (default: the root logger)."""
    for handler in (logger or logging.getLogger()).handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
