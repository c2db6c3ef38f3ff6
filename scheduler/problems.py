"""Input problems: what is wrong, where (file, post, field), so a user can fix it in one go."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from scheduler.redaction import redact


@dataclass(frozen=True)
class Problem:
    """One thing wrong with user input."""

    file: str
    message: str
    post: str | None = None  # "post 2 (key spring-teaser)" or None for file-level problems
    field: str | None = None  # dotted path inside the post, e.g. "carousel[1].video"

    def __str__(self) -> str:
        where = [self.file]
        if self.post:
            where.append(self.post)
        if self.field:
            where.append(f"field '{self.field}'")
        # a message quotes what the file wrote, and a file may write a token or a password
        return shown(redact(": ".join(where) + ": " + self.message) or "")


MAX_SHOWN = 600  # a message quotes what was written; a hostile file may write a lot


def shown(text: str, limit: int | None = MAX_SHOWN) -> str:
    """`text` made safe to print or write: control characters, lone surrogates and other
    unprintable characters escaped (a message quotes hostile input), and at most `limit`
    characters (None: all of it)."""
    out = "".join(
        c if c.isprintable() or c == " " else c.encode("unicode_escape", "backslashreplace").decode("ascii")
        for c in text
    )
    return out if limit is None or len(out) <= limit else out[: limit - 1] + "…"


def foreign_keys(keys: Iterable[object], allowed: Sequence[str]) -> str | None:
    """For a document none of whose top-level keys is one we know: the problem to report
    instead of a line per key, or None. Only near misses of a known key are named, with
    their fix; the other keys are counted, not quoted: the file may be another program's (a
    mistyped path, a link to a file of secrets) and each line of such a file parses as a
    key."""
    names = [str(k) for k in keys]
    if not names or any(n in allowed for n in names):
        return None
    near = [(n, m[0]) for n in names if (m := difflib.get_close_matches(n, allowed, n=1))]
    text = (f"none of its {len(names)} top-level key{'s' if len(names) != 1 else ''} is one this file "
            f"takes ({', '.join(allowed)})")
    text += "".join(f"; '{shown(redact(n) or '', 40)}': did you mean '{m}'?" for n, m in near)
    if not near:
        text += ": is it the right file?"
    hidden = len(names) - len(near)
    return text + (f" ({hidden} key{'s' if hidden != 1 else ''} not shown)" if hidden else "")


def plain(value: object) -> str:
    """A stored text shown whole on one line: control characters (line breaks, escape
    sequences) escaped, so what a file's name or a stranger's words hold cannot print lines
    or colours that look like ours."""
    return shown(str(value), limit=None)


class InvalidInput(Exception):
    """Raised with every problem found; callers print them all and exit 2."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))
