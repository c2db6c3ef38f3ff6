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
        return ": ".join(where) + ": " + self.message


class InvalidInput(Exception):
    """Raised with every problem found; callers print them all and exit 2."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))
