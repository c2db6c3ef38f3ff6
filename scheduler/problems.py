"""Input problems: what is wrong, where (file, post, field), so a user can fix it in one go."""

from __future__ import annotations

from dataclasses import dataclass


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
        return shown(": ".join(where) + ": " + self.message)


MAX_SHOWN = 600  # a message quotes what was written; a hostile file may write a lot


def shown(text: str, limit: int = MAX_SHOWN) -> str:
    """`text` made safe to print or write: control characters, lone surrogates and other
    unprintable characters escaped (a message quotes hostile input), and at most `limit`
    characters."""
    out = "".join(
        c if c.isprintable() or c == " " else c.encode("unicode_escape", "backslashreplace").decode("ascii")
        for c in text
    )
    return out if len(out) <= limit else out[: limit - 1] + "…"


class InvalidInput(Exception):
    """Raised with every problem found; callers print them all and exit 2."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))
