"""YAML queue files → validated PostSpecs (design §7.3, a contract).

A file is all or nothing: every problem in it is collected (file, post, field, and a message
saying what is allowed) and raised together as InvalidInput; a file with any problem yields no
posts. Limits come from graph-api-facts.md §1.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote, urlsplit
from zoneinfo import ZoneInfo

import yaml

from scheduler.config import Settings
from scheduler.models import (
    POST_KINDS,
    MediaItem,
    MediaKind,
    PostKind,
    PostSpec,
    UserTag,
    derived_key,
)
from scheduler.problems import InvalidInput, Problem
from scheduler.timeparse import (
    NoTimezone,
    TimeProblem,
    load_timezone,
    parse_at,
    past_problem,
    type_name,
)

CAPTION_MAX_CHARS = 2200
CAPTION_MAX_HASHTAGS = 30
CAPTION_MAX_MENTIONS = 20
ALT_TEXT_MAX_CHARS = 1000
MAX_COLLABORATORS = 3
CAROUSEL_MIN_ITEMS, CAROUSEL_MAX_ITEMS = 2, 10
TRIAL_GRADUATIONS = ("MANUAL", "SS_PERFORMANCE")
# Aliases are shared objects after loading, so a billion-laughs file is small in memory but
# huge to walk; counting every visit (not every object) bounds the work done on it.
MAX_VALUES = 1_000_000
MAX_DEPTH = 50

IMAGE_EXTS = frozenset({".jpg", ".jpeg"})
VIDEO_EXTS = frozenset({".mp4", ".mov"})
_OTHER_IMAGE_EXTS = frozenset(
    {".png", ".gif", ".webp", ".heic", ".heif", ".bmp", ".tif", ".tiff", ".avif"}
)
_OTHER_VIDEO_EXTS = frozenset({".avi", ".mkv", ".webm", ".wmv", ".flv", ".3gp", ".mpg", ".mpeg"})

TOP_KEYS = ("account", "timezone", "posts")
COMMON_KEYS = ("key", "account", "timezone", "at")
KIND_FIELDS: dict[PostKind, tuple[str, ...]] = {
    "image": ("image", "alt_text", "caption", "location_id", "user_tags", "collaborators",
              "first_comment"),
    "reel": ("reel", "cover", "thumb_offset_ms", "share_to_feed", "audio_name", "caption",
             "location_id", "user_tags", "collaborators", "first_comment", "trial"),
    "story": ("story", "user_tags"),
    "carousel": ("carousel", "caption", "location_id", "collaborators", "first_comment"),
}  # fmt: skip
POST_KEYS = COMMON_KEYS + tuple(dict.fromkeys(f for fs in KIND_FIELDS.values() for f in fs))
_ITEM_KEYS = ("image", "video", "alt_text", "user_tags")  # a carousel item in mapping form

_KEY_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")
_USERNAME_RE = re.compile(r"^[A-Za-z0-9._]{1,30}$")
_DIGITS_RE = re.compile(r"^[0-9]+$")
_SCHEME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_HASHTAG_RE = re.compile(r"(?<!\w)#\w+")
_MENTION_RE = re.compile(r"(?<![\w@.])@[\w.]+")
_LOCAL_HTTP_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})

_KIND_PHRASE = {"image": "an image post", "reel": "a reel", "story": "a story",
                "carousel": "a carousel"}  # fmt: skip
_KIND_PLURAL = {"image": "image posts", "reel": "reels", "story": "stories",
                "carousel": "carousels"}  # fmt: skip
_ITEM_HINT = {
    ("carousel", "alt_text"): "put it on each image item instead: {image: URL, alt_text: …}",
    ("carousel", "user_tags"): "put them on each image item instead: {image: URL, user_tags: […]}",
}


# --------------------------------------------------------------------------- public API


def load_queue_file(path: Path, settings: Settings, now: datetime) -> list[PostSpec]:
    """Read and validate one queue file; raise InvalidInput listing every problem."""
    text = _read_text(path, settings.queue.max_file_bytes)
    base_dir = Path(os.path.abspath(path)).parent
    return parse_queue_text(text, str(path), settings, now, base_dir=base_dir)


def parse_queue_text(
    text: str, source: str, settings: Settings, now: datetime, *, base_dir: Path | None = None
) -> list[PostSpec]:
    """Validate queue-file text named `source`; relative local paths resolve from `base_dir`
    (default: the current directory). `now` is an aware datetime. All or nothing."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    ctx = _Ctx(source, [])
    specs = _parse_document(ctx, text, settings, now.astimezone(UTC), base_dir or Path.cwd())
    if ctx.problems:
        raise InvalidInput(ctx.problems)
    return specs


# --------------------------------------------------------------------------- plumbing


@dataclass(frozen=True)
class _Ctx:
    """Where problems go, and which post they belong to."""

    file: str
    problems: list[Problem]
    post: str | None = None

    def add(self, field: str | None, message: str) -> None:
        self.problems.append(Problem(self.file, message, self.post, field))

    def for_post(self, label: str) -> _Ctx:
        return _Ctx(self.file, self.problems, label)


@dataclass(frozen=True)
class _Defaults:
    """File-level settings; *_bad marks values already reported, so posts do not repeat them."""

    account: str | None = None
    account_bad: bool = False
    tz: ZoneInfo | None = None
    tz_name: str | None = None
    tz_bad: bool = False


def _leaf(path: str) -> str:
    return path.rsplit(".", 1)[-1]


def _join(words: Sequence[str], last: str = "and") -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} {last} {words[-1]}"


def _quote_hint(value: object) -> str:
    # YAML turns unquoted 123, true, 2026-01-01 into non-text; quoting is the usual fix.
    return "; put it in quotes" if isinstance(value, bool | int | float | date) else ""


def _unknown_keys(ctx: _Ctx, prefix: str, raw: dict[Any, Any], allowed: Sequence[str]) -> None:
    for key in raw:
        if str(key) in allowed:
            continue
        path = f"{prefix}.{key}" if prefix else str(key)
        near = difflib.get_close_matches(str(key), allowed, n=1)
        hint = f" (did you mean '{near[0]}'?)" if near else f"; allowed here: {', '.join(allowed)}"
        ctx.add(path, f"unknown key '{key}'{hint}")


# --------------------------------------------------------------------------- reading


def _read_text(path: Path, limit: int) -> str:
    def fail(message: str) -> InvalidInput:
        return InvalidInput([Problem(str(path), message)])

    try:
        st = path.stat()
    except OSError as e:
        raise fail(f"cannot read the file: {e.strerror}") from None
    if stat.S_ISDIR(st.st_mode):
        raise fail("is a folder, not a queue file")
    if not stat.S_ISREG(st.st_mode):
        raise fail("is not a regular file")
    too_big = f"; the limit is {limit:,} bytes (queue.max_file_bytes)"
    if st.st_size > limit:
        raise fail(f"the file is {st.st_size:,} bytes{too_big}")
    try:
        with path.open("rb") as f:
            data = f.read(limit + 1)  # never more, even if the file grew since stat()
    except OSError as e:
        raise fail(f"cannot read the file: {e.strerror}") from None
    if len(data) > limit:
        raise fail(f"the file is more than {limit:,} bytes{too_big}")
    try:
        return data.decode("utf-8-sig")  # a BOM from a Windows editor is harmless
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise fail(
            f"the file is not UTF-8 text (byte 0x{data[e.start]:02x} on line {line}); "
            "save it with UTF-8 encoding"
        ) from None


class _Loader(yaml.SafeLoader):
    """yaml.safe_load's loader, plus a note of keys written twice in one mapping
    (YAML would silently keep only the last one, losing what the user wrote first)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.duplicates: list[tuple[str, int, int]] = []

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[tuple[str, str], int] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag.endswith(":merge"):
                continue
            line, ident = key_node.start_mark.line + 1, (key_node.tag, key_node.value)
            if ident in seen:
                self.duplicates.append((key_node.value, seen[ident], line))
            else:
                seen[ident] = line
        return super().construct_mapping(node, deep=deep)


def _yaml_error(e: yaml.YAMLError, text: str) -> str:
    if isinstance(e, yaml.reader.ReaderError) and isinstance(e.character, int):
        line = text.count("\n", 0, e.position) + 1
        return (
            f"the file contains a control character (#x{e.character:04x}) on line {line}, "
            "which YAML does not allow; remove it"
        )
    if not isinstance(e, yaml.MarkedYAMLError):
        return f"not valid YAML: {e}"
    mark = e.problem_mark or e.context_mark
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    problem = e.problem or "unreadable"
    context = f" ({e.context})" if e.context else ""
    hint = ""
    if "mapping values are not allowed" in problem:
        hint = "; text containing ': ' must be put in quotes"
    elif "'\\t'" in problem:
        hint = "; indent with spaces, not tabs"
    return f"not valid YAML{where}: {problem}{context}{hint}"


def _load_yaml(ctx: _Ctx, text: str) -> tuple[bool, Any]:
    try:
        loader = _Loader(text)  # the reader checks every character here already
    except yaml.YAMLError as e:
        ctx.add(None, _yaml_error(e, text))
        return False, None
    try:
        doc = loader.get_single_data()
    except yaml.YAMLError as e:
        ctx.add(None, _yaml_error(e, text))
        return False, None
    except RecursionError:
        ctx.add(None, f"the file is nested too deeply (more than {MAX_DEPTH} levels)")
        return False, None
    finally:
        loader.dispose()
    for key, first, again in loader.duplicates:
        ctx.add(
            None,
            f"'{key}' is written twice in the same place (lines {first} and {again}); "
            "keep only one",
        )
    size_problem = _size_problem(doc)
    if size_problem:
        ctx.add(None, size_problem)
        return False, None
    return True, doc


def _size_problem(doc: Any) -> str | None:
    visited = 0
    stack: list[tuple[Any, int]] = [(doc, 0)]
    while stack:
        value, depth = stack.pop()
        visited += 1
        if visited > MAX_VALUES:
            return (
                f"the file expands to more than {MAX_VALUES:,} values "
                "(YAML aliases repeated over and over?); it is refused"
            )
        if depth > MAX_DEPTH:
            return f"the file is nested too deeply (more than {MAX_DEPTH} levels)"
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value)
    return None


# --------------------------------------------------------------------------- document


def _parse_document(
    ctx: _Ctx, text: str, settings: Settings, now: datetime, base_dir: Path
) -> list[PostSpec]:
    limit = settings.queue.max_file_bytes
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > limit:
        ctx.add(
            None, f"the file is {size:,} bytes; the limit is {limit:,} bytes (queue.max_file_bytes)"
        )
        return []
    ok, doc = _load_yaml(ctx, text)
    if not ok:
        return []
    if doc is None:
        ctx.add(None, "the file is empty; it needs a posts: list with at least one post")
        return []
    if not isinstance(doc, dict):
        hint = " (put the list of posts under posts:)" if isinstance(doc, list) else ""
        ctx.add(
            None,
            f"the file must be a mapping with account, timezone and posts, got {type_name(doc)}{hint}",
        )
        return []
    _unknown_keys(ctx, "", doc, TOP_KEYS)
    defaults = _file_defaults(ctx, doc, settings)
    posts = doc.get("posts")
    if posts is None:
        ctx.add("posts", "posts is missing: list the posts under posts:")
        return []
    if not isinstance(posts, list):
        ctx.add(
            "posts",
            f"posts must be a list of posts (each starting with '- '), got {type_name(posts)}",
        )
        return []
    if not posts:
        ctx.add("posts", "posts is empty; there is nothing to queue")
        return []
    return _parse_posts(ctx, posts, defaults, settings, now, base_dir)


def _file_defaults(ctx: _Ctx, doc: dict[Any, Any], settings: Settings) -> _Defaults:
    account, account_bad = None, False
    if doc.get("account") is not None:
        account = _account_name(ctx, doc["account"], settings)
        account_bad = account is None
    tz, tz_name, tz_bad = None, None, False
    if doc.get("timezone") is not None:
        try:
            tz = load_timezone(doc["timezone"])
            tz_name = str(doc["timezone"]).strip()
        except TimeProblem as e:
            ctx.add("timezone", str(e))
            tz_bad = True
    return _Defaults(account, account_bad, tz, tz_name, tz_bad)


def _account_name(ctx: _Ctx, value: object, settings: Settings) -> str | None:
    if not isinstance(value, str):
        ctx.add("account", f"account must be text, got {type_name(value)}{_quote_hint(value)}")
        return None
    name = value.strip()
    if settings.account(name) is None:
        names = [a.name for a in settings.accounts]
        known = f"configured: {', '.join(names)}" if names else "no accounts are configured"
        ctx.add("account", f"account '{name}' is not configured ({known})")
        return None
    return name


def _post_label(number: int, raw: object) -> str:
    key = raw.get("key") if isinstance(raw, dict) else None
    if isinstance(key, str) and _KEY_RE.match(key):
        return f"post {number} (key {key})"
    return f"post {number}"


def _parse_posts(
    ctx: _Ctx,
    posts: list[Any],
    defaults: _Defaults,
    settings: Settings,
    now: datetime,
    base_dir: Path,
) -> list[PostSpec]:
    specs: list[PostSpec] = []
    owner: dict[str, int] = {}  # key → number of the post that has it
    for number, raw in enumerate(posts, start=1):
        pctx = ctx.for_post(_post_label(number, raw))
        if not isinstance(raw, dict):
            pctx.add(
                None, f"a post must be a mapping of fields (at:, image:, …), got {type_name(raw)}"
            )
            continue
        spec = _parse_post(pctx, raw, defaults, settings, now, base_dir)
        key = spec.key if spec else raw.get("key")
        if not isinstance(key, str) or not _KEY_RE.match(key):
            continue
        if key in owner and spec is not None and not spec.key_explicit:
            pctx.add(
                None,
                f"this post is identical to post {owner[key]} (same account, time, media and "
                "text), so both would be the same post; remove one, or give each a key",
            )
        elif key in owner:
            pctx.add(
                "key",
                f"key '{key}' is already used by post {owner[key]}; each post in a file needs its own key",
            )
        else:
            owner[key] = number
        if spec is not None:
            specs.append(spec)
    return specs


# --------------------------------------------------------------------------- one post


def _parse_post(
    ctx: _Ctx,
    raw: dict[Any, Any],
    defaults: _Defaults,
    settings: Settings,
    now: datetime,
    base_dir: Path,
) -> PostSpec | None:
    before = len(ctx.problems)
    kind = _post_kind(ctx, raw)
    key = _key(ctx, raw.get("key"))
    account = _post_account(ctx, raw, defaults, settings)
    at_known, at = _post_at(ctx, raw, defaults, settings, now)
    if kind is None:  # media fields depend on the kind; with it unclear, stop here
        return None
    fields = {f: raw[f] for f in KIND_FIELDS[kind] if f in raw}
    media, extras = _BUILDERS[kind](ctx, fields, base_dir)
    if len(ctx.problems) > before or account is None or not at_known:
        return None
    spec = PostSpec(
        key=key or "", account=account, kind=kind, at=at, media=media,
        key_explicit=key is not None, source_file=ctx.file, **extras,
    )  # fmt: skip
    if key is None:  # identity from content, so a second import of the file adds nothing
        spec = dataclasses.replace(spec, key=derived_key(spec.content_hash()))
    return spec


def _post_kind(ctx: _Ctx, raw: dict[Any, Any]) -> PostKind | None:
    kinds = [k for k in POST_KINDS if k in raw]
    kind = kinds[0] if len(kinds) == 1 else None
    allowed = COMMON_KEYS + (KIND_FIELDS[kind] if kind else POST_KEYS[len(COMMON_KEYS) :])
    for name in raw:
        if str(name) not in POST_KEYS:
            _unknown_keys(ctx, "", {name: None}, allowed)
        elif kind and str(name) not in allowed:
            ctx.add(str(name), _not_applicable(str(name), kind))
    if not kinds:
        ctx.add(None, "the post has no media: give exactly one of image, reel, story or carousel")
    elif len(kinds) > 1:
        ctx.add(
            None,
            f"a post has exactly one of image, reel, story or carousel; this one has {_join(kinds)}",
        )
    return kind


def _not_applicable(field: str, kind: PostKind) -> str:
    hint = _ITEM_HINT.get((kind, field))
    if hint is None:
        kinds = [_KIND_PLURAL[k] for k in POST_KINDS if field in KIND_FIELDS[k]]
        hint = f"it is for {_join(kinds)}"
    return f"{field} does not apply to {_KIND_PHRASE[kind]}; {hint}"


def _key(ctx: _Ctx, value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        ctx.add("key", f"key must be text, got {type_name(value)}{_quote_hint(value)}")
    elif len(value) > 128:
        ctx.add("key", f"key is {len(value):,} characters; the limit is 128")
    elif not _KEY_RE.match(value):
        ctx.add(
            "key",
            f"key '{value}' has characters that are not allowed; use letters, digits, "
            "'_', '.', ':' and '-' (no spaces)",
        )
    else:
        return value
    return None


def _post_account(
    ctx: _Ctx, raw: dict[Any, Any], defaults: _Defaults, settings: Settings
) -> str | None:
    if raw.get("account") is not None:
        return _account_name(ctx, raw["account"], settings)
    if defaults.account is None and not defaults.account_bad:
        names = ", ".join(a.name for a in settings.accounts) or "none configured"
        ctx.add(
            "account",
            f"no account: set account: at the top of the file or on this post (configured: {names})",
        )
    return defaults.account


def _post_at(
    ctx: _Ctx, raw: dict[Any, Any], defaults: _Defaults, settings: Settings, now: datetime
) -> tuple[bool, datetime | None]:
    """(known, time): the time may be None (`now`); unknown when it could not be read."""
    tz, tz_name, tz_bad = defaults.tz, defaults.tz_name, defaults.tz_bad
    if raw.get("timezone") is not None:
        try:
            tz, tz_name, tz_bad = (
                load_timezone(raw["timezone"]),
                str(raw["timezone"]).strip(),
                False,
            )
        except TimeProblem as e:
            ctx.add("timezone", str(e))
            tz, tz_name, tz_bad = None, None, True
    value = raw.get("at")
    if value is None:
        ctx.add("at", "at is missing; say when to publish, e.g. at: 2026-12-01 09:00, or at: now")
        return False, None
    try:
        parsed = parse_at(value, tz, tz_name)
    except NoTimezone as e:
        if not tz_bad:  # a bad timezone is reported already; do not add a second problem
            ctx.add("at", str(e))
        return False, None
    except TimeProblem as e:
        ctx.add("at", str(e))
        return False, None
    late = past_problem(parsed, now, settings.queue.past_grace_s)
    if late:
        ctx.add("at", late)
    return True, parsed.utc


# --------------------------------------------------------------------------- field values


def _text(ctx: _Ctx, path: str, value: object, *, limit: int | None = None) -> str | None:
    """Optional text; empty (null or "") means not given."""
    if value is None:
        return None
    if not isinstance(value, str):
        ctx.add(path, f"{_leaf(path)} must be text, got {type_name(value)}{_quote_hint(value)}")
        return None
    if limit is not None and len(value) > limit:
        ctx.add(path, f"{_leaf(path)} is {len(value):,} characters; the limit is {limit:,}")
    return value or None


def _caption(ctx: _Ctx, value: object) -> str | None:
    caption = _text(ctx, "caption", value, limit=CAPTION_MAX_CHARS)
    if caption is None:
        return None
    tags = len(_HASHTAG_RE.findall(caption))
    if tags > CAPTION_MAX_HASHTAGS:
        ctx.add("caption", f"caption has {tags} hashtags; the limit is {CAPTION_MAX_HASHTAGS}")
    mentions = len(_MENTION_RE.findall(caption))
    if mentions > CAPTION_MAX_MENTIONS:
        ctx.add(
            "caption", f"caption has {mentions} @-mentions; the limit is {CAPTION_MAX_MENTIONS}"
        )
    return caption


def _bool(ctx: _Ctx, path: str, value: object) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    shown = f" '{value}'" if isinstance(value, str) else ""
    ctx.add(
        path, f"{_leaf(path)} must be true or false (without quotes), got {type_name(value)}{shown}"
    )
    return None


def _location_id(ctx: _Ctx, value: object) -> str | None:
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


def _thumb_offset(ctx: _Ctx, value: object) -> int | None:
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


def _username(ctx: _Ctx, path: str, value: object) -> str | None:
    if not isinstance(value, str):
        ctx.add(
            path,
            f"{_leaf(path)} must be an Instagram username, got {type_name(value)}{_quote_hint(value)}",
        )
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


def _collaborators(ctx: _Ctx, value: object) -> tuple[str, ...]:
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
    names = [_username(ctx, f"collaborators[{i}]", v) for i, v in enumerate(value)]
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


def _coordinate(ctx: _Ctx, path: str, value: object, along: str) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        ctx.add(path, f"{_leaf(path)} must be a number from 0 to 1, got {type_name(value)}")
        return None
    if not 0.0 <= value <= 1.0:
        ctx.add(
            path,
            f"{_leaf(path)} is {value}; it must be from 0 to 1 (a fraction of the {along})",
        )
        return None
    return float(value)  # 1 and 1.0 must hash alike


def _user_tags(ctx: _Ctx, path: str, value: object, *, xy_required: bool) -> tuple[UserTag, ...]:
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


def _user_tag(ctx: _Ctx, p: str, raw: dict[Any, Any], xy_required: bool) -> UserTag | None:
    before = len(ctx.problems)
    _unknown_keys(ctx, p, raw, ("username", "x", "y"))
    name = None
    if raw.get("username") is None:
        ctx.add(f"{p}.username", "username is missing; each tag names the account to tag")
    else:
        name = _username(ctx, f"{p}.username", raw["username"])
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


# --------------------------------------------------------------------------- media sources


def _extension(source: str) -> str:
    path = urlsplit(source).path if _SCHEME_RE.match(source) else source
    return PurePosixPath(path).suffix.lower()


def _url_problem(url: str) -> str | None:
    """Why Meta could not fetch this URL, or None. The local emulator's http URLs pass."""
    odd = [c for c in dict.fromkeys(url) if not c.isascii()]
    if odd:
        example = f"{odd[0]} → {quote(odd[0])}"
        return (
            f"contains characters Meta cannot fetch ({' '.join(odd)}); URLs must be plain "
            f"ASCII: percent-encode them ({example}) or rename the file"
        )
    if any(c.isspace() for c in url):
        return "contains spaces; write them as %20"
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError as e:
        return f"is not a valid URL ({e})"
    scheme = parts.scheme.lower()
    if scheme == "http" and host in _LOCAL_HTTP_HOSTS:
        return None
    if scheme == "http":
        return (
            "is an http:// URL; Meta fetches media only over https:// "
            "(plain http works only for localhost, for the emulator)"
        )
    if scheme != "https":
        return f"must be an https:// URL, not {scheme}://"
    if not host:
        return "has no host name"
    return None


def _extension_problem(source: str, kind: MediaKind) -> str | None:
    ext = _extension(source)
    if kind == "image":
        if ext in VIDEO_EXTS or ext in _OTHER_VIDEO_EXTS:
            return f"looks like a video ({ext}); this must be a JPEG image (.jpg/.jpeg)"
        if ext in _OTHER_IMAGE_EXTS:
            return f"is a {ext} file; Instagram accepts only JPEG images (.jpg/.jpeg)"
    else:
        if ext in IMAGE_EXTS or ext in _OTHER_IMAGE_EXTS:
            return f"looks like an image ({ext}); this must be an MP4 or MOV video"
        if ext in _OTHER_VIDEO_EXTS:
            return f"is a {ext} file; Instagram accepts only MP4 or MOV videos"
    return None


def _local_file(ctx: _Ctx, path: str, written: str, base_dir: Path) -> str | None:
    p = Path(written).expanduser()
    relative = not p.is_absolute()
    p = Path(os.path.abspath(base_dir / p))
    where = " (relative paths are read from the queue file's folder)" if relative else ""
    if not p.exists():
        ctx.add(path, f"local file {p} does not exist{where}")
    elif p.is_dir():
        ctx.add(path, f"{p} is a folder, not a video file")
    elif not p.is_file():
        ctx.add(path, f"{p} is not a regular file")
    else:
        try:
            with p.open("rb"):
                pass
        except OSError as e:
            ctx.add(path, f"local file {p} cannot be read: {e.strerror}")
        else:
            return str(p)
    return None


def _media_source(
    ctx: _Ctx, path: str, value: object, kind: MediaKind, base_dir: Path, *, local_ok: bool = True
) -> str | None:
    """An https URL (or, for video, a readable local file → absolute path)."""
    leaf = _leaf(path)
    local_ok = local_ok and kind == "video"
    wanted = "an https URL" + (" or a local file path" if local_ok else "")
    if value is None or value == "":
        ctx.add(path, f"{leaf} is empty; give {wanted}")
        return None
    if not isinstance(value, str):
        ctx.add(path, f"{leaf} must be {wanted}, got {type_name(value)}")
        return None
    written = value.strip()
    if _SCHEME_RE.match(written):
        problem = _url_problem(written)
        source = None if problem else written
        if problem:
            ctx.add(path, f"{leaf} {written} {problem}")
    elif not local_ok:
        why = "images" if kind == "image" else "this field"
        ctx.add(
            path,
            f"{leaf} '{written}' is not a URL; {why} must be given as an https:// URL "
            "(Meta fetches them itself; only videos can be uploaded from a local file)",
        )
        return None
    else:
        source = _local_file(ctx, path, written, base_dir)
    ext_problem = _extension_problem(written, kind)
    if ext_problem:
        ctx.add(path, f"{leaf} {written} {ext_problem}")
        return None
    return source


def _typed_source(
    ctx: _Ctx, path: str, value: object, base_dir: Path, extra_keys: tuple[str, ...]
) -> tuple[MediaKind | None, str | None]:
    """A story or carousel item: bare URL/path typed by extension, or {image:}/{video:}."""
    if isinstance(value, str):
        ext = _extension(value.strip())
        kind: MediaKind
        if ext in IMAGE_EXTS:
            kind = "image"
        elif ext in VIDEO_EXTS:
            kind = "video"
        else:
            ctx.add(
                path,
                f"cannot tell whether {value} is an image or a video from its extension "
                f"({ext or 'none'}): .jpg/.jpeg is an image, .mp4/.mov a video; "
                "otherwise write {image: URL} or {video: URL}",
            )
            return None, None
        return kind, _media_source(ctx, path, value, kind, base_dir)
    if isinstance(value, dict):
        _unknown_keys(ctx, path, value, ("image", "video", *extra_keys))
        kinds: list[MediaKind] = [k for k in ("image", "video") if k in value]
        if len(kinds) != 1:
            ctx.add(
                path,
                f"give exactly one of image or video here, e.g. {{video: URL}} (found {len(kinds)})",
            )
            return None, None
        return kinds[0], _media_source(
            ctx, f"{path}.{kinds[0]}", value[kinds[0]], kinds[0], base_dir
        )
    ctx.add(
        path,
        f"{_leaf(path)} must be a URL, a file path, {{image: URL}} or {{video: URL}}, "
        f"got {type_name(value)}",
    )
    return None, None


# --------------------------------------------------------------------------- kinds

_Built = tuple[tuple[MediaItem, ...], dict[str, Any]]


def _feed_fields(ctx: _Ctx, f: dict[str, Any]) -> dict[str, Any]:
    return {
        "caption": _caption(ctx, f.get("caption")),
        "location_id": _location_id(ctx, f.get("location_id")),
        "collaborators": _collaborators(ctx, f.get("collaborators")),
        "first_comment": _text(ctx, "first_comment", f.get("first_comment")),
    }


def _build_image(ctx: _Ctx, f: dict[str, Any], base_dir: Path) -> _Built:
    item = MediaItem(
        kind="image",
        source=_media_source(ctx, "image", f.get("image"), "image", base_dir) or "",
        alt_text=_text(ctx, "alt_text", f.get("alt_text"), limit=ALT_TEXT_MAX_CHARS),
        user_tags=_user_tags(ctx, "user_tags", f.get("user_tags"), xy_required=True),
    )
    return (item,), _feed_fields(ctx, f)


def _build_reel(ctx: _Ctx, f: dict[str, Any], base_dir: Path) -> _Built:
    item = MediaItem(
        kind="video",
        source=_media_source(ctx, "reel", f.get("reel"), "video", base_dir) or "",
        user_tags=_user_tags(ctx, "user_tags", f.get("user_tags"), xy_required=False),
    )
    cover = f.get("cover")
    if cover is not None and f.get("thumb_offset_ms") is not None:
        ctx.add(
            "cover",
            "give cover or thumb_offset_ms, not both: cover is a separate JPEG, "
            "thumb_offset_ms picks a frame of the video",
        )
    feed = _feed_fields(ctx, f)
    extras = {
        "cover_url": None
        if cover is None
        else _media_source(ctx, "cover", cover, "image", base_dir, local_ok=False),
        "thumb_offset_ms": _thumb_offset(ctx, f.get("thumb_offset_ms")),
        "share_to_feed": _bool(ctx, "share_to_feed", f.get("share_to_feed")),
        "audio_name": _text(ctx, "audio_name", f.get("audio_name")),
        "trial_graduation": _trial(ctx, f.get("trial")),
    }
    return (item,), {**feed, **extras}


def _trial(ctx: _Ctx, value: object) -> str | None:
    if value is None:
        return None
    allowed = " or ".join(TRIAL_GRADUATIONS)
    if not isinstance(value, dict):
        ctx.add(
            "trial", f"trial must be a mapping like {{graduation: MANUAL}}, got {type_name(value)}"
        )
        return None
    _unknown_keys(ctx, "trial", value, ("graduation",))
    grad = value.get("graduation")
    if grad is None:
        ctx.add("trial.graduation", f"graduation is missing; it is {allowed}")
    elif not isinstance(grad, str) or grad.strip().upper() not in TRIAL_GRADUATIONS:
        ctx.add("trial.graduation", f"graduation must be {allowed}, got '{grad}'")
    else:
        return grad.strip().upper()
    return None


def _build_story(ctx: _Ctx, f: dict[str, Any], base_dir: Path) -> _Built:
    kind, source = _typed_source(ctx, "story", f.get("story"), base_dir, ())
    tags = _user_tags(ctx, "user_tags", f.get("user_tags"), xy_required=False)
    return (MediaItem(kind or "image", source or "", None, tags),), {}


def _build_carousel(ctx: _Ctx, f: dict[str, Any], base_dir: Path) -> _Built:
    items = f.get("carousel")
    if not isinstance(items, list):
        ctx.add(
            "carousel",
            f"carousel must be a list of {CAROUSEL_MIN_ITEMS} to {CAROUSEL_MAX_ITEMS} items, "
            f"got {type_name(items)}",
        )
        return (), _feed_fields(ctx, f)
    if not CAROUSEL_MIN_ITEMS <= len(items) <= CAROUSEL_MAX_ITEMS:
        ctx.add(
            "carousel",
            f"a carousel needs {CAROUSEL_MIN_ITEMS} to {CAROUSEL_MAX_ITEMS} items; "
            f"this one has {len(items)}",
        )
    media = tuple(_carousel_item(ctx, i, item, base_dir) for i, item in enumerate(items))
    return media, _feed_fields(ctx, f)


def _carousel_item(ctx: _Ctx, i: int, raw: object, base_dir: Path) -> MediaItem:
    path = f"carousel[{i}]"
    kind, source = _typed_source(ctx, path, raw, base_dir, ("alt_text", "user_tags"))
    extra: dict[Any, Any] = raw if isinstance(raw, dict) else {}
    alt: str | None = None
    tags: tuple[UserTag, ...] = ()
    if kind == "video":
        if "user_tags" in extra:
            ctx.add(
                f"{path}.user_tags",
                "a video item cannot have user_tags; only image items can be tagged",
            )
        if "alt_text" in extra:
            ctx.add(f"{path}.alt_text", "a video item cannot have alt_text; it is for image items")
    elif kind == "image":
        alt = _text(ctx, f"{path}.alt_text", extra.get("alt_text"), limit=ALT_TEXT_MAX_CHARS)
        tags = _user_tags(ctx, f"{path}.user_tags", extra.get("user_tags"), xy_required=True)
    return MediaItem(kind or "image", source or "", alt, tags)


_BUILDERS = {
    "image": _build_image,
    "reel": _build_reel,
    "story": _build_story,
    "carousel": _build_carousel,
}
