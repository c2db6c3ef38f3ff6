"""The four post kinds in a queue file: which fields each takes, and how each becomes media.

A post names its kind by its media field (image, reel, story or carousel); a field that
belongs to another kind is reported with the kinds it is for. Each builder turns a post's
fields into (media items, the PostSpec fields beyond them). See README "Post kinds, fields and how they reach Instagram".
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from scheduler.models import POST_KINDS, MediaItem, PostKind, UserTag
from scheduler.queuefile.fields import (
    CAPTION_MAX_CHARS,
    Ctx,
    boolean,
    caption,
    collaborators,
    image_extras,
    location_id,
    optional_text,
    thumb_offset,
    unknown_keys,
    user_tags,
)
from scheduler.queuefile.media import media_source, typed_source
from scheduler.queuefile.times import type_name

CAROUSEL_MIN_ITEMS, CAROUSEL_MAX_ITEMS = 2, 10
TRIAL_GRADUATIONS = ("MANUAL", "SS_PERFORMANCE")

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

_KIND_PHRASE = {"image": "an image post", "reel": "a reel", "story": "a story",
                "carousel": "a carousel"}  # fmt: skip
_KIND_PLURAL = {"image": "image posts", "reel": "reels", "story": "stories",
                "carousel": "carousels"}  # fmt: skip
_ITEM_HINT = {
    ("carousel", "alt_text"): "put it on each image item instead: {image: URL, alt_text: …}",
    ("carousel", "user_tags"): "put them on each image item instead: {image: URL, user_tags: […]}",
}

Built = tuple[tuple[MediaItem, ...], dict[str, Any]]


def _join(words: Sequence[str]) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"


# --------------------------------------------------------------------------- which kind


def post_kind(ctx: Ctx, raw: dict[Any, Any]) -> PostKind | None:
    """The post's kind, with every key it may not have reported; None if unclear."""
    kinds = [k for k in POST_KINDS if k in raw]
    kind = kinds[0] if len(kinds) == 1 else None
    allowed = COMMON_KEYS + (KIND_FIELDS[kind] if kind else POST_KEYS[len(COMMON_KEYS) :])
    for name in raw:
        if str(name) not in POST_KEYS:
            unknown_keys(ctx, "", {name: None}, allowed)
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


# --------------------------------------------------------------------------- building


def build_media(ctx: Ctx, kind: PostKind, fields: dict[str, Any], base_dir: Path) -> Built:
    """(media items, other PostSpec fields) from the fields of a post of this kind."""
    return _BUILDERS[kind](ctx, fields, base_dir)


def _feed_fields(ctx: Ctx, f: dict[str, Any]) -> dict[str, Any]:
    return {
        "caption": caption(ctx, f.get("caption")),
        "location_id": location_id(ctx, f.get("location_id")),
        "collaborators": collaborators(ctx, f.get("collaborators")),
        # a comment has the caption's length limit (Meta refuses longer ones)
        "first_comment": optional_text(ctx, "first_comment", f.get("first_comment"), limit=CAPTION_MAX_CHARS),
    }


def _build_image(ctx: Ctx, f: dict[str, Any], base_dir: Path) -> Built:
    source = media_source(ctx, "image", f.get("image"), "image", base_dir) or ""
    alt, tags = image_extras(ctx, "", f)
    return (MediaItem("image", source, alt, tags),), _feed_fields(ctx, f)


def _build_reel(ctx: Ctx, f: dict[str, Any], base_dir: Path) -> Built:
    item = MediaItem(
        kind="video",
        source=media_source(ctx, "reel", f.get("reel"), "video", base_dir) or "",
        user_tags=user_tags(ctx, "user_tags", f.get("user_tags"), xy_required=False),
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
        else media_source(ctx, "cover", cover, "image", base_dir, local_ok=False),
        "thumb_offset_ms": thumb_offset(ctx, f.get("thumb_offset_ms")),
        "share_to_feed": boolean(ctx, "share_to_feed", f.get("share_to_feed")),
        "audio_name": optional_text(ctx, "audio_name", f.get("audio_name")),
        "trial_graduation": _trial(ctx, f.get("trial")),
    }
    return (item,), {**feed, **extras}


def _trial(ctx: Ctx, value: object) -> str | None:
    if value is None:
        return None
    allowed = " or ".join(TRIAL_GRADUATIONS)
    if not isinstance(value, dict):
        ctx.add(
            "trial", f"trial must be a mapping like {{graduation: MANUAL}}, got {type_name(value)}"
        )
        return None
    unknown_keys(ctx, "trial", value, ("graduation",))
    grad = value.get("graduation")
    if grad is None:
        ctx.add("trial.graduation", f"graduation is missing; it is {allowed}")
    elif not isinstance(grad, str) or grad.strip().upper() not in TRIAL_GRADUATIONS:
        ctx.add("trial.graduation", f"graduation must be {allowed}, got '{grad}'")
    else:
        return grad.strip().upper()
    return None


def _build_story(ctx: Ctx, f: dict[str, Any], base_dir: Path) -> Built:
    kind, source = typed_source(ctx, "story", f.get("story"), base_dir, ())
    tags = user_tags(ctx, "user_tags", f.get("user_tags"), xy_required=False)
    return (MediaItem(kind or "image", source or "", None, tags),), {}


def _build_carousel(ctx: Ctx, f: dict[str, Any], base_dir: Path) -> Built:
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


def _carousel_item(ctx: Ctx, i: int, raw: object, base_dir: Path) -> MediaItem:
    path = f"carousel[{i}]"
    kind, source = typed_source(ctx, path, raw, base_dir, ("alt_text", "user_tags"))
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
        alt, tags = image_extras(ctx, path, extra)
    return MediaItem(kind or "image", source or "", alt, tags)


_BUILDERS: dict[PostKind, Callable[[Ctx, dict[str, Any], Path], Built]] = {
    "image": _build_image,
    "reel": _build_reel,
    "story": _build_story,
    "carousel": _build_carousel,
}
