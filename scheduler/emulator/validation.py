"""Checks on `POST /{ig-user-id}/media` parameters, per the facts sheet's parameter table.

Refusals raised here are synchronous (the container is not created). Problems Meta only
finds when it fetches the media (format, download) are reported later through the
container's status; see processing.py.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from .errors import invalid_parameter, publishing_error
from .models import MediaKind, Slot

CONTAINER_PARAMS = frozenset(
    {
        "image_url", "video_url", "media_type", "caption", "alt_text", "is_carousel_item",
        "children", "cover_url", "thumb_offset", "share_to_feed", "audio_name",
        "collaborators", "location_id", "user_tags", "product_tags", "upload_type",
        "trial_params",
    }
)  # fmt: skip
# Accepted on every endpoint and otherwise ignored.
TRANSPORT_PARAMS = frozenset(
    {"access_token", "appsecret_proof", "format", "pretty", "suppress_http_code", "method"}
)

_IMAGE_SLOTS: set[Slot] = {"IMAGE", "ITEM_IMAGE", "STORY_IMAGE"}
_VIDEO_SLOTS: set[Slot] = {"REELS", "ITEM_VIDEO", "STORY_VIDEO"}

# Where each parameter may appear (caption on stories: UNCONFIRMED, accepted and dropped).
ALLOWED_IN: dict[str, set[Slot]] = {
    "image_url": _IMAGE_SLOTS,
    "video_url": _VIDEO_SLOTS,
    "caption": {"IMAGE", "REELS", "CAROUSEL", "STORY_IMAGE", "STORY_VIDEO"},
    "alt_text": {"IMAGE", "ITEM_IMAGE"},
    "share_to_feed": {"REELS"},
    "cover_url": {"REELS"},
    "audio_name": {"REELS"},
    "trial_params": {"REELS"},
    "thumb_offset": {"REELS", "ITEM_VIDEO", "STORY_VIDEO"},
    "collaborators": {"IMAGE", "REELS", "CAROUSEL"},
    "location_id": {"IMAGE", "REELS", "CAROUSEL"},
    "user_tags": {"IMAGE", "ITEM_IMAGE", "REELS", "STORY_IMAGE", "STORY_VIDEO"},
    "product_tags": {"IMAGE", "ITEM_IMAGE", "ITEM_VIDEO", "REELS"},
    "children": {"CAROUSEL"},
    "upload_type": {"REELS", "STORY_VIDEO", "ITEM_VIDEO"},
}

_SLOT_NAMES: dict[Slot, str] = {
    "IMAGE": "a feed image",
    "ITEM_IMAGE": "an image carousel item",
    "ITEM_VIDEO": "a video carousel item",
    "REELS": "a reel",
    "STORY_IMAGE": "an image story",
    "STORY_VIDEO": "a video story",
    "CAROUSEL": "a carousel container",
}

_HINTS: dict[tuple[str, str], str] = {
    ("caption", "item"): "; set it on the carousel container",
    ("location_id", "item"): "; set it on the carousel container",
    ("collaborators", "item"): "; set them on the carousel container",
    ("user_tags", "CAROUSEL"): "; tag users on the carousel items",
    ("alt_text", "CAROUSEL"): "; set it on each image carousel item",
}

MAX_CAPTION = 2200
MAX_HASHTAGS = 30
MAX_MENTIONS = 20
MAX_ALT_TEXT = 1000
MAX_COLLABORATORS = 3
MAX_PRODUCT_TAGS = 5
_HASHTAG = re.compile(r"(?<![\w&])#\w+")
_MENTION = re.compile(r"(?<![\w@])@[\w.]+")


@dataclass
class ContainerSpec:
    """A validated container request."""

    slot: Slot
    media: MediaKind | None
    url: str | None
    resumable: bool
    children: list[str]
    params: dict[str, str]


def validate_container(params: dict[str, str]) -> ContainerSpec:
    """Validate a container request or raise the GraphError the API would answer."""
    for name in params:
        if name not in CONTAINER_PARAMS and name not in TRANSPORT_PARAMS:
            raise invalid_parameter(f"'{name}' is not a parameter of POST /{{ig-user-id}}/media")
    p = {k: v for k, v in params.items() if k in CONTAINER_PARAMS}
    slot = _slot(p)
    resumable = _resumable(p, slot)
    for name in p:
        if name == "media_type" or name == "is_carousel_item":
            continue
        if slot not in ALLOWED_IN[name]:
            raise invalid_parameter(_wrong_level(name, slot))
    media: MediaKind | None = (
        "image" if slot in _IMAGE_SLOTS else "video" if slot in _VIDEO_SLOTS else None
    )
    url = p.get("image_url") if media == "image" else p.get("video_url")
    if media is not None and url is None and not resumable:
        raise invalid_parameter(
            f"{'image_url' if media == 'image' else 'video_url'} is required for "
            f"{_SLOT_NAMES[slot]}"
        )
    if url is not None:
        _check_url("image_url" if media == "image" else "video_url", url)
    _check_values(p, slot)
    children = _children(p["children"]) if slot == "CAROUSEL" else []
    return ContainerSpec(
        slot=slot, media=media, url=url, resumable=resumable, children=children, params=p
    )


def _slot(p: dict[str, str]) -> Slot:
    media_type = p.get("media_type")
    item = (
        parse_bool("is_carousel_item", p["is_carousel_item"]) if "is_carousel_item" in p else False
    )
    if media_type == "CAROUSEL":
        if item:
            raise invalid_parameter("a carousel cannot be a carousel item")
        if "children" not in p:
            raise invalid_parameter("children is required for media_type=CAROUSEL")
        return "CAROUSEL"
    if media_type == "REELS":
        if item:
            raise invalid_parameter("reels cannot be carousel items; use media_type=VIDEO")
        return "REELS"
    if media_type == "STORIES":
        if item:
            raise invalid_parameter("stories cannot be carousel items")
        has_image, has_video = "image_url" in p, "video_url" in p
        if has_image and has_video:
            raise invalid_parameter("a story takes exactly one of image_url or video_url")
        if has_image:
            return "STORY_IMAGE"
        if has_video or p.get("upload_type") == "resumable":
            return "STORY_VIDEO"
        raise invalid_parameter("a story needs image_url or video_url")
    if media_type == "VIDEO":
        if not item:
            raise invalid_parameter(
                "media_type=VIDEO is only for carousel items; publish a single video as REELS",
                2207023,
            )
        return "ITEM_VIDEO"
    if media_type is None or media_type == "IMAGE":
        if "video_url" in p and "image_url" not in p:
            raise invalid_parameter(
                "media_type=VIDEO is required for a video carousel item"
                if item
                else "media_type is required for video; use REELS or STORIES",
                2207023,
            )
        if "image_url" not in p:
            raise invalid_parameter("image_url is required for an image")
        if "video_url" in p:
            raise invalid_parameter("an image takes image_url, not video_url")
        return "ITEM_IMAGE" if item else "IMAGE"
    raise invalid_parameter(f"the media type {media_type!r} is not supported", 2207023)


def _resumable(p: dict[str, str], slot: Slot) -> bool:
    upload_type = p.get("upload_type")
    if upload_type is None:
        return False
    if upload_type != "resumable":
        raise invalid_parameter(f"upload_type must be 'resumable', not {upload_type!r}")
    if slot not in ALLOWED_IN["upload_type"]:
        raise invalid_parameter(_wrong_level("upload_type", slot))
    if "video_url" in p:
        raise invalid_parameter("video_url cannot be combined with upload_type=resumable")
    return True


def _wrong_level(name: str, slot: Slot) -> str:
    key = "item" if slot in ("ITEM_IMAGE", "ITEM_VIDEO") else slot
    hint = _HINTS.get((name, key), "")
    return f"{name} is not allowed on {_SLOT_NAMES[slot]}{hint}"


def _check_url(name: str, url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise invalid_parameter(f"{name} must be a public http(s) URL, not {url!r}")


def _check_values(p: dict[str, str], slot: Slot) -> None:
    if "caption" in p:
        check_caption(p["caption"])
    if "alt_text" in p and len(p["alt_text"]) > MAX_ALT_TEXT:
        raise invalid_parameter(f"alt_text is longer than {MAX_ALT_TEXT} characters")
    if "share_to_feed" in p:
        parse_bool("share_to_feed", p["share_to_feed"])
    if "cover_url" in p:
        _check_url("cover_url", p["cover_url"])
    if "thumb_offset" in p:
        try:
            offset = int(p["thumb_offset"])
        except ValueError:
            raise invalid_parameter("thumb_offset must be an integer (milliseconds)") from None
        if offset < 0:
            raise publishing_error(2207057)
    if "location_id" in p and not p["location_id"].isdigit():
        raise invalid_parameter("location_id must be the numeric id of a Page with a location")
    if "collaborators" in p:
        names = _json_list("collaborators", p["collaborators"])
        if not all(isinstance(n, str) and n for n in names):
            raise invalid_parameter("collaborators must be a JSON array of usernames")
        if len(names) > MAX_COLLABORATORS:
            raise invalid_parameter(f"at most {MAX_COLLABORATORS} collaborators are allowed")
    if "user_tags" in p:
        # feed and carousel photos need a position; stories take optional coordinates
        _check_user_tags(p["user_tags"], positioned=slot in _IMAGE_SLOTS and slot != "STORY_IMAGE")
    if "product_tags" in p:
        tags = _json_list("product_tags", p["product_tags"])
        if len(tags) > MAX_PRODUCT_TAGS:
            raise invalid_parameter(f"at most {MAX_PRODUCT_TAGS} product tags are allowed")
    if "trial_params" in p:
        trial = _json("trial_params", p["trial_params"])
        if not isinstance(trial, dict) or trial.get("graduation_strategy") not in (
            "MANUAL",
            "SS_PERFORMANCE",
        ):
            raise invalid_parameter(
                'trial_params must be {"graduation_strategy": "MANUAL"|"SS_PERFORMANCE"}'
            )


def check_caption(caption: str) -> None:
    """Caption limits; hashtags share the too-long code (the facts sheet gives none)."""
    if len(caption) > MAX_CAPTION:
        raise publishing_error(2207010, f"The caption is longer than {MAX_CAPTION} characters.")
    if len(_HASHTAG.findall(caption)) > MAX_HASHTAGS:
        raise publishing_error(2207010, f"The caption has more than {MAX_HASHTAGS} hashtags.")
    if len(_MENTION.findall(caption)) > MAX_MENTIONS:
        raise publishing_error(2207040)


def _check_user_tags(raw: str, *, positioned: bool) -> None:
    tags = _json_list("user_tags", raw)
    for i, tag in enumerate(tags):
        if not isinstance(tag, dict) or not isinstance(tag.get("username"), str):
            raise invalid_parameter(f"user_tags[{i}] must be an object with a username")
        extra = set(tag) - {"username", "x", "y"}
        if extra:
            raise invalid_parameter(f"user_tags[{i}] has unknown keys {sorted(extra)}")
        for axis in ("x", "y"):
            if axis not in tag:
                if positioned:
                    raise invalid_parameter(f"user_tags[{i}].{axis} is required on images")
                continue
            value = tag[axis]
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise invalid_parameter(f"user_tags[{i}].{axis} must be a number")
            if not 0.0 <= float(value) <= 1.0:
                raise invalid_parameter(f"user_tags[{i}].{axis} must be between 0.0 and 1.0")


def _children(raw: str) -> list[str]:
    text = raw.strip()
    if text.startswith("["):
        ids = [str(x) for x in _json_list("children", text)]
    else:
        ids = [c.strip() for c in text.split(",") if c.strip()]
    if not 2 <= len(ids) <= 10:
        raise publishing_error(
            2207028, f"A carousel must have between 2 and 10 items; got {len(ids)}."
        )
    if len(set(ids)) != len(ids):
        raise invalid_parameter("children lists the same container twice")
    return ids


def parse_bool(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("true", "1"):
        return True
    if value in ("false", "0"):
        return False
    raise invalid_parameter(f"{name} must be true or false, not {raw!r}")


def _json(name: str, raw: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        raise invalid_parameter(f"{name} must be JSON") from None


def _json_list(name: str, raw: str) -> list[Any]:
    value = _json(name, raw)
    if not isinstance(value, list):
        raise invalid_parameter(f"{name} must be a JSON array")
    return value
