"""Container parameters for each post kind: every field at the level the API accepts it.

Pure functions (README "Post kinds, fields and how they reach Instagram"): tests assert on exactly what reaches the API.
"""

from __future__ import annotations

import json

from scheduler.models import MediaItem, PostSpec, UserTag


def _tags(tags: tuple[UserTag, ...]) -> str:
    out = []
    for t in tags:
        d: dict[str, object] = {"username": t.username}
        if t.x is not None and t.y is not None:
            d["x"], d["y"] = t.x, t.y
        out.append(d)
    return json.dumps(out, separators=(",", ":"))


def _common_top(spec: PostSpec, p: dict[str, str]) -> None:
    """Fields of a feed image, a reel and a carousel parent (not stories, not children)."""
    if spec.caption:
        p["caption"] = spec.caption
    if spec.location_id:
        p["location_id"] = spec.location_id
    if spec.collaborators:
        p["collaborators"] = json.dumps(list(spec.collaborators))


def _video_source(item: MediaItem, p: dict[str, str]) -> None:
    # a local file goes through the resumable upload; Meta fetches a URL itself
    if item.is_local:
        p["upload_type"] = "resumable"
    else:
        p["video_url"] = item.source


def single_params(spec: PostSpec) -> dict[str, str]:
    """Parameters of the one container of an image, reel or story post."""
    item = spec.media[0]
    p: dict[str, str] = {}
    if spec.kind == "image":
        p["image_url"] = item.source
        if item.alt_text:
            p["alt_text"] = item.alt_text
        _common_top(spec, p)
    elif spec.kind == "reel":
        p["media_type"] = "REELS"
        _video_source(item, p)
        _common_top(spec, p)
        if spec.cover_url:
            p["cover_url"] = spec.cover_url
        elif spec.thumb_offset_ms is not None:
            p["thumb_offset"] = str(spec.thumb_offset_ms)
        if spec.share_to_feed is not None:
            p["share_to_feed"] = "true" if spec.share_to_feed else "false"
        if spec.audio_name:
            p["audio_name"] = spec.audio_name
        if spec.trial_graduation:
            p["trial_params"] = json.dumps({"graduation_strategy": spec.trial_graduation})
    elif spec.kind == "story":
        p["media_type"] = "STORIES"
        if item.kind == "image":
            p["image_url"] = item.source
        else:
            _video_source(item, p)
    else:
        raise ValueError(f"{spec.kind} has no single container")
    if item.user_tags:
        p["user_tags"] = _tags(item.user_tags)
    return p


def child_params(item: MediaItem) -> dict[str, str]:
    """A carousel item: no caption, location or collaborators at this level."""
    p = {"is_carousel_item": "true"}
    if item.kind == "image":
        p["image_url"] = item.source
        if item.alt_text:
            p["alt_text"] = item.alt_text
        if item.user_tags:
            p["user_tags"] = _tags(item.user_tags)
    else:
        p["media_type"] = "VIDEO"
        _video_source(item, p)
    return p


def parent_params(spec: PostSpec, child_ids: list[str]) -> dict[str, str]:
    p = {"media_type": "CAROUSEL", "children": ",".join(child_ids)}
    _common_top(spec, p)
    return p


def media_for_position(spec: PostSpec, position: int) -> MediaItem:
    return spec.media[0] if position == 0 else spec.media[position - 1]


def params_for_position(spec: PostSpec, position: int) -> dict[str, str]:
    """Position 0 is a single post's container; 1..n are carousel items."""
    if position == 0:
        return single_params(spec)
    return child_params(spec.media[position - 1])
