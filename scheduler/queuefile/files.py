"""YAML queue files → validated PostSpecs (README "Queue files": a contract).

A file is all or nothing: every problem in it is collected (file, post, field, and a message
saying what is allowed) and raised together as InvalidInput; a file with any problem yields no
posts. Limits are Meta's (README "Post kinds, fields and how they reach Instagram").

This module walks the document and its posts; reading and YAML loading are in
scheduler.queuefile.yamlload, field checks in scheduler.queuefile.fields, media sources in
scheduler.queuefile.media, and the rules of each post kind in scheduler.queuefile.kinds.
"""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeGuard
from zoneinfo import ZoneInfo

from scheduler.config import Settings
from scheduler.models import PostSpec, derived_key
from scheduler.problems import InvalidInput, foreign_keys
from scheduler.queuefile.fields import (
    ALT_TEXT_MAX_CHARS,
    CAPTION_MAX_CHARS,
    CAPTION_MAX_HASHTAGS,
    CAPTION_MAX_MENTIONS,
    MAX_COLLABORATORS,
    Ctx,
    not_text,
    unknown_keys,
)
from scheduler.queuefile.kinds import (
    CAROUSEL_MAX_ITEMS,
    CAROUSEL_MIN_ITEMS,
    COMMON_KEYS,
    KIND_FIELDS,
    POST_KEYS,
    TRIAL_GRADUATIONS,
    build_media,
    post_kind,
)
from scheduler.queuefile.media import IMAGE_EXTS, VIDEO_EXTS
from scheduler.queuefile.messages import ENTRY_KEYS, MessageSpec, derived_message_key, message_of
from scheduler.queuefile.times import (
    NoTimezone,
    TimeProblem,
    load_timezone,
    parse_at,
    past_problem,
    type_name,
)
from scheduler.queuefile.yamlload import MAX_DEPTH, MAX_VALUES, load_queue_yaml, read_queue_text

__all__ = [  # the limits and key sets stay importable from here, where they always were
    "ALT_TEXT_MAX_CHARS",
    "CAPTION_MAX_CHARS",
    "CAPTION_MAX_HASHTAGS",
    "CAPTION_MAX_MENTIONS",
    "CAROUSEL_MAX_ITEMS",
    "CAROUSEL_MIN_ITEMS",
    "COMMON_KEYS",
    "IMAGE_EXTS",
    "KIND_FIELDS",
    "MAX_COLLABORATORS",
    "MAX_DEPTH",
    "MAX_VALUES",
    "POST_KEYS",
    "TOP_KEYS",
    "TRIAL_GRADUATIONS",
    "VIDEO_EXTS",
    "QueueDocument",
    "load_queue_document",
    "load_queue_file",
    "parse_queue_document",
    "parse_queue_text",
]

TOP_KEYS = ("account", "timezone", "posts", "messages")
_KEY_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")


# --------------------------------------------------------------------------- public API


@dataclass(frozen=True)
class QueueDocument:
    """A validated queue file: its posts and its planned messages."""

    posts: list[PostSpec]
    messages: list[MessageSpec]


def load_queue_document(
    path: Path, settings: Settings, now: datetime, *, follow_symlinks: bool = True
) -> QueueDocument:
    """Read and validate one queue file (posts and messages); raise InvalidInput listing
    every problem."""
    text = read_queue_text(path, settings.queue.max_file_bytes, follow_symlinks=follow_symlinks)
    base_dir = Path(os.path.abspath(path)).parent
    return parse_queue_document(text, str(path), settings, now, base_dir=base_dir)


def load_queue_file(
    path: Path, settings: Settings, now: datetime, *, follow_symlinks: bool = True
) -> list[PostSpec]:
    """Read and validate one queue file; its posts (see load_queue_document for messages)."""
    return load_queue_document(path, settings, now, follow_symlinks=follow_symlinks).posts


def parse_queue_document(
    text: str, source: str, settings: Settings, now: datetime, *, base_dir: Path | None = None
) -> QueueDocument:
    """Validate queue-file text named `source`; relative local paths resolve from `base_dir`
    (default: the current directory). `now` is an aware datetime. All or nothing."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    ctx = Ctx(source, [], media_dirs=tuple(settings.queue.media_dirs))
    doc = _parse_document(ctx, text, settings, now.astimezone(UTC), base_dir or Path.cwd())
    if ctx.problems:
        raise InvalidInput(ctx.problems)
    return doc


def parse_queue_text(
    text: str, source: str, settings: Settings, now: datetime, *, base_dir: Path | None = None
) -> list[PostSpec]:
    """The posts of queue-file text (see parse_queue_document)."""
    return parse_queue_document(text, source, settings, now, base_dir=base_dir).posts


# --------------------------------------------------------------------------- document


@dataclass(frozen=True)
class _Zone:
    """A timezone as written; bad marks one already reported, so it is not reported again."""

    tz: ZoneInfo | None = None
    name: str | None = None
    bad: bool = False


@dataclass(frozen=True)
class _Defaults:
    """File-level settings; account_bad marks an account already reported, like _Zone.bad."""

    account: str | None = None
    account_bad: bool = False
    zone: _Zone = _Zone()


_NOTHING = QueueDocument([], [])


def _parse_document(
    ctx: Ctx, text: str, settings: Settings, now: datetime, base_dir: Path
) -> QueueDocument:
    ok, doc, problems = load_queue_yaml(text, settings.queue.max_file_bytes)
    for message in problems:
        ctx.add(None, message)
    if not ok:
        return _NOTHING
    if doc is None:
        ctx.add(None, "the file is empty; it needs a posts: list with at least one post")
        return _NOTHING
    if not isinstance(doc, dict):
        hint = " (put the list of posts under posts:)" if isinstance(doc, list) else ""
        ctx.add(
            None,
            f"the file must be a mapping with account, timezone and posts, got {type_name(doc)}{hint}",
        )
        return _NOTHING
    if (foreign := foreign_keys(doc, TOP_KEYS)) is not None:
        ctx.add(None, foreign)
        return _NOTHING
    unknown_keys(ctx, "", doc, TOP_KEYS)
    defaults = _file_defaults(ctx, doc, settings)
    posts, messages = doc.get("posts"), doc.get("messages")
    found_messages = _parse_messages(ctx, messages, defaults, settings, now) if messages is not None else []
    if posts is None and messages is not None:
        return QueueDocument([], found_messages)
    if posts is None:
        ctx.add("posts", "posts is missing: list the posts under posts:")
        return _NOTHING
    if not isinstance(posts, list):
        ctx.add(
            "posts",
            f"posts must be a list of posts (each starting with '- '), got {type_name(posts)}",
        )
        return _NOTHING
    if not posts and messages is None:
        ctx.add("posts", "posts is empty; there is nothing to queue")
        return _NOTHING
    return QueueDocument(_parse_posts(ctx, posts, defaults, settings, now, base_dir), found_messages)


def _parse_messages(
    ctx: Ctx, entries: object, defaults: _Defaults, settings: Settings, now: datetime
) -> list[MessageSpec]:
    """The `messages:` list: each entry's key, account and time as a post's, and its
    message as `message send` takes it."""
    if not isinstance(entries, list) or not entries:
        ctx.add("messages", "messages must be a non-empty list of messages (each starting with '- '), "
                f"got {type_name(entries) if entries != [] else 'an empty list'}")
        return []
    out: list[MessageSpec] = []
    owner: dict[str, int] = {}
    for number, raw in enumerate(entries, start=1):
        key_raw = raw.get("key") if isinstance(raw, dict) else None
        mctx = ctx.for_post(f"message {number} (key {key_raw})" if _is_key(key_raw) else f"message {number}")
        if not isinstance(raw, dict):
            mctx.add(None, f"a message must be a mapping of fields (at:, to:, text:, …), got {type_name(raw)}")
            continue
        before = len(ctx.problems)
        unknown_keys(mctx, "", raw, ENTRY_KEYS)
        key = _key(mctx, raw.get("key"))
        account = _post_account(mctx, raw, defaults, settings)
        at_known, at = _post_at(mctx, raw, defaults.zone, settings, now)
        message = message_of(mctx, raw)
        if len(ctx.problems) > before or account is None or not at_known or message is None:
            continue
        spec = MessageSpec(key or "", account, at, message, ctx.file)
        if key is None:
            spec = dataclasses.replace(spec, key=derived_message_key(spec.content_hash()))
        if spec.key in owner:
            mctx.add("key", f"key '{spec.key}' is already used by message {owner[spec.key]}; "
                     "each message needs its own key")
            continue
        owner[spec.key] = number
        out.append(spec)
    return out


def _file_defaults(ctx: Ctx, doc: dict[Any, Any], settings: Settings) -> _Defaults:
    account, account_bad = None, False
    if doc.get("account") is not None:
        account = _account_name(ctx, doc["account"], settings)
        account_bad = account is None
    zone = _zone(ctx, doc["timezone"]) if doc.get("timezone") is not None else _Zone()
    return _Defaults(account, account_bad, zone)


def _zone(ctx: Ctx, value: object) -> _Zone:
    try:
        return _Zone(load_timezone(value), str(value).strip())
    except TimeProblem as e:
        ctx.add("timezone", str(e))
        return _Zone(bad=True)


def _account_name(ctx: Ctx, value: object, settings: Settings) -> str | None:
    if not isinstance(value, str):
        ctx.add("account", not_text("account", value))
        return None
    name = value.strip()
    if settings.account(name) is None:
        names = [a.name for a in settings.accounts]
        known = f"configured: {', '.join(names)}" if names else "no accounts are configured"
        ctx.add("account", f"account '{name}' is not configured ({known})")
        return None
    return name


def _is_key(value: object) -> TypeGuard[str]:
    return isinstance(value, str) and _KEY_RE.match(value) is not None


def _post_label(number: int, raw: object) -> str:
    key = raw.get("key") if isinstance(raw, dict) else None
    return f"post {number} (key {key})" if _is_key(key) else f"post {number}"


def _parse_posts(
    ctx: Ctx,
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
        if not _is_key(key):
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
    ctx: Ctx,
    raw: dict[Any, Any],
    defaults: _Defaults,
    settings: Settings,
    now: datetime,
    base_dir: Path,
) -> PostSpec | None:
    before = len(ctx.problems)
    kind = post_kind(ctx, raw)
    key = _key(ctx, raw.get("key"))
    account = _post_account(ctx, raw, defaults, settings)
    at_known, at = _post_at(ctx, raw, defaults.zone, settings, now)
    if kind is None:  # media fields depend on the kind; with it unclear, stop here
        return None
    fields = {f: raw[f] for f in KIND_FIELDS[kind] if f in raw}
    media, extras = build_media(ctx, kind, fields, base_dir)
    if len(ctx.problems) > before or account is None or not at_known:
        return None
    spec = PostSpec(
        key=key or "", account=account, kind=kind, at=at, media=media,
        key_explicit=key is not None, source_file=ctx.file, **extras,
    )  # fmt: skip
    if key is None:  # identity from content, so a second import of the file adds nothing
        spec = dataclasses.replace(spec, key=derived_key(spec.content_hash()))
    return spec


def _key(ctx: Ctx, value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        ctx.add("key", not_text("key", value))
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
    ctx: Ctx, raw: dict[Any, Any], defaults: _Defaults, settings: Settings
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
    ctx: Ctx, raw: dict[Any, Any], zone: _Zone, settings: Settings, now: datetime
) -> tuple[bool, datetime | None]:
    """(known, time): the time may be None (`now`); unknown when it could not be read."""
    if raw.get("timezone") is not None:
        zone = _zone(ctx, raw["timezone"])
    value = raw.get("at")
    if value is None:
        ctx.add("at", "at is missing; say when to publish, e.g. at: 2026-12-01 09:00, or at: now")
        return False, None
    try:
        parsed = parse_at(value, zone.tz, zone.name)
    except NoTimezone as e:
        if not zone.bad:  # a bad timezone is reported already; do not add a second problem
            ctx.add("at", str(e))
        return False, None
    except TimeProblem as e:
        ctx.add("at", str(e))
        return False, None
    late = past_problem(parsed, now, settings.queue.past_grace_s)
    if late:
        ctx.add("at", late)
    return True, parsed.utc
