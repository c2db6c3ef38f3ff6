"""Queue-file field values → checked Python values (README "Queue files"; limits: README "Post kinds, fields and how they reach Instagram").

Each check reports what is wrong with one field (or a field of a list item) to a Ctx and
returns the value to use, or None/() when there is none; it never raises. Media sources are
in scheduler.queuefile.media, the rules of each post kind in scheduler.queuefile.kinds.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from scheduler.models import UserTag
from scheduler.problems import Problem, shown
from scheduler.queuefile.times import type_name
from scheduler.redaction import redact

CAPTION_MAX_CHARS = 2200
CAPTION_MAX_HASHTAGS = 30
CAPTION_MAX_MENTIONS = 20
ALT_TEXT_MAX_CHARS = 1000
MAX_COLLABORATORS = 3

_USERNAME_RE = re.compile(r"^[A-Za-z0-9._]{1,30}$")
_DIGITS_RE = re.compile(r"^[0-9]+$")
_HASHTAG_RE = re.compile(r"(?<!\w)#\w+")
_MENTION_RE = re.compile(r"(?<![\w@.])@[\w.]+")


# --------------------------------------------------------------------------- plumbing


@dataclass(frozen=True)
class Ctx:
    """Where problems go, and which post they belong to."""

    file: str
    problems: list[Problem]
    post: str | None = None
    media_dirs: tuple[Path, ...] = ()  # where local media may come from; () = the file's folder

    def add(self, field: str | None, message: str) -> None:
        self.problems.append(Problem(self.file, message, self.post, field))

    def for_post(self, label: str) -> Ctx:
        return Ctx(self.file, self.problems, label, self.media_dirs)


def leaf(path: str) -> str:
    return path.rsplit(".", 1)[-1]


def not_text(name: str, value: object, wanted: str = "text") -> str:
    """'<name> must be <wanted>, got …', with a hint when YAML made the value non-text."""
    # YAML turns unquoted 123, true, 2026-01-01 into non-text; quoting is the usual fix.
    hint = "; put it in quotes" if isinstance(value, bool | int | float | date) else ""
    return f"{name} must be {wanted}, got {type_name(value)}{hint}"


MAX_KEY_SHOWN = 80  # characters of an unknown key quoted in a problem


def unknown_keys(ctx: Ctx, prefix: str, raw: dict[Any, Any], allowed: Sequence[str]) -> None:
    for key in raw:
        if str(key) in allowed:
            continue
        # a key of any length is quoted short: the reason after it must stay on the line
        name = shown(redact(str(key)) or "", MAX_KEY_SHOWN)  # redacted before cut: a cut secret would not match
        path = f"{prefix}.{name}" if prefix else name
        near = difflib.get_close_matches(str(key), allowed, n=1)
        hint = f" (did you mean '{near[0]}'?)" if near else f"; allowed here: {', '.join(allowed)}"
        ctx.add(path, f"unknown key '{name}'{hint}")


def unusable_char(text: str) -> str | None:
    """Why `text` cannot be sent or stored as text, or None. A NUL or another control
    character (other than tab and line breaks) is invisible and refused by Meta; a lone
    surrogate (written as "\\ud800" in YAML) is not a character at all and cannot be
    encoded, so the post could never be sent."""
    for i, c in enumerate(text, start=1):
        code = ord(c)
        if 0xD800 <= code <= 0xDFFF:
            return (
                f"contains a lone surrogate (\\u{code:04x}) at character {i}, which is not "
                "a character; remove it"
            )
        if (code < 0x20 and c not in "\t\n\r") or 0x7F <= code < 0xA0:
            return f"contains the control character U+{code:04X} at character {i}; remove it"
    return None


# --------------------------------------------------------------------------- field values


def optional_text(ctx: Ctx, path: str, value: object, *, limit: int | None = None) -> str | None:
    """Optional text; empty (null or "") means not given."""
    if value is None:
        return None
    if not isinstance(value, str):
        ctx.add(path, not_text(leaf(path), value))
        return None
    bad = unusable_char(value)
    if bad:
        ctx.add(path, f"{leaf(path)} {bad}")
        return None
    if limit is not None and len(value) > limit:
        ctx.add(path, f"{leaf(path)} is {len(value):,} characters; the limit is {limit:,}")
    return value or None


def caption(ctx: Ctx, value: object) -> str | None:
    written = optional_text(ctx, "caption", value, limit=CAPTION_MAX_CHARS)
    if written is None:
        return None
    tags = len(_HASHTAG_RE.findall(written))
    if tags > CAPTION_MAX_HASHTAGS:
        ctx.add("caption", f"caption has {tags} hashtags; the limit is {CAPTION_MAX_HASHTAGS}")
    mentions = len(_MENTION_RE.findall(written))
    if mentions > CAPTION_MAX_MENTIONS:
        ctx.add(
            "caption", f"caption has {mentions} @-mentions; the limit is {CAPTION_MAX_MENTIONS}"
        )
    return written


def boolean(ctx: Ctx, path: str, value: object) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    shown = f" '{value}'" if isinstance(value, str) else ""
    ctx.add(
        path, f"{leaf(path)} must be true or false (without quotes), got {type_name(value)}{shown}"
    )
    return None


def location_id(ctx: Ctx, value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return str(value)
    if isinstance(value, str) and _DIGITS_RE.match(value.strip()):
        return value.strip()
    got = f"'{value}'" if isinstance(value, str) else type_name(value)
    ctx.add(
        "location_id",
        f"location_id must be the numeric id of a Facebook Page with a location "
        f'(e.g. "110123456789"), got {got}',
    )
    return None


def thumb_offset(ctx: Ctx, value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        ctx.add(
            "thumb_offset_ms",
            f"thumb_offset_ms must be a whole number of milliseconds, got {type_name(value)}",
        )
        return None
    if value < 0:
        ctx.add(
            "thumb_offset_ms",
            f"thumb_offset_ms is {value}; it must be 0 or more (milliseconds into the video)",
        )
        return None
    return value


def username(ctx: Ctx, path: str, value: object) -> str | None:
    if not isinstance(value, str):
        ctx.add(path, not_text(leaf(path), value, "an Instagram username"))
        return None
    name = value.strip().removeprefix("@")
    if not _USERNAME_RE.match(name):
        ctx.add(
            path,
            f"'{value}' is not an Instagram username (letters, digits, '.' and '_', "
            "at most 30 characters)",
        )
        return None
    return name


def collaborators(ctx: Ctx, value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        ctx.add(
            "collaborators",
            f"collaborators must be a list of usernames, e.g. [partner, friend], got {type_name(value)}",
        )
        return ()
    if len(value) > MAX_COLLABORATORS:
        ctx.add(
            "collaborators",
            f"collaborators lists {len(value)} accounts; the limit is {MAX_COLLABORATORS}",
        )
    names = [username(ctx, f"collaborators[{i}]", v) for i, v in enumerate(value)]
    found = [n for n in names if n is not None]
    seen: set[str] = set()
    reported: set[str] = set()
    for name in found:
        low = name.lower()  # usernames are case-insensitive
        if low in seen and low not in reported:
            ctx.add("collaborators", f"'{name}' is listed more than once")
            reported.add(low)
        seen.add(low)
    return tuple(found)


def _coordinate(ctx: Ctx, path: str, value: object, along: str) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        ctx.add(path, f"{leaf(path)} must be a number from 0 to 1, got {type_name(value)}")
        return None
    if not 0.0 <= value <= 1.0:
        ctx.add(
            path,
            f"{leaf(path)} is {value}; it must be from 0 to 1 (a fraction of the {along})",
        )
        return None
    return float(value)  # 1 and 1.0 must hash alike


def user_tags(ctx: Ctx, path: str, value: object, *, xy_required: bool) -> tuple[UserTag, ...]:
    if value is None:
        return ()
    example = "[{username: partner, x: 0.5, y: 0.4}]"
    if not isinstance(value, list):
        ctx.add(path, f"user_tags must be a list like {example}, got {type_name(value)}")
        return ()
    tags: list[UserTag] = []
    for i, raw in enumerate(value):
        p = f"{path}[{i}]"
        if not isinstance(raw, dict):
            ctx.add(
                p, f"each user tag must be a mapping like {example[1:-1]}, got {type_name(raw)}"
            )
            continue
        tag = _user_tag(ctx, p, raw, xy_required)
        if tag is not None:
            tags.append(tag)
    return tuple(tags)


def _user_tag(ctx: Ctx, p: str, raw: dict[Any, Any], xy_required: bool) -> UserTag | None:
    before = len(ctx.problems)
    unknown_keys(ctx, p, raw, ("username", "x", "y"))
    name = None
    if raw.get("username") is None:
        ctx.add(f"{p}.username", "username is missing; each tag names the account to tag")
    else:
        name = username(ctx, f"{p}.username", raw["username"])
    has_x, has_y = raw.get("x") is not None, raw.get("y") is not None
    x = _coordinate(ctx, f"{p}.x", raw["x"], "width, from the left") if has_x else None
    y = _coordinate(ctx, f"{p}.y", raw["y"], "height, from the top") if has_y else None
    if xy_required:
        for axis, present in (("x", has_x), ("y", has_y)):
            if not present:
                ctx.add(
                    f"{p}.{axis}",
                    f"{axis} is missing; tags on images need x and y, from 0 to 1 "
                    "(0, 0 is the top-left corner)",
                )
    elif has_x != has_y:
        ctx.add(p, "give both x and y, or neither")
    if len(ctx.problems) > before or name is None:
        return None
    return UserTag(name, x, y)


def image_extras(
    ctx: Ctx, prefix: str, fields: dict[Any, Any]
) -> tuple[str | None, tuple[UserTag, ...]]:
    """An image's alt_text and user_tags (tags on an image need x and y), under `prefix`."""
    at = f"{prefix}." if prefix else ""
    alt = optional_text(ctx, f"{at}alt_text", fields.get("alt_text"), limit=ALT_TEXT_MAX_CHARS)
    tags = user_tags(ctx, f"{at}user_tags", fields.get("user_tags"), xy_required=True)
    return alt, tags
