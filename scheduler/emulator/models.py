"""The emulator's objects: accounts, containers, media, comments (plain data, no locking)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

# What a container will become: a feed image, a carousel child, a reel, a story, a carousel.
Slot = Literal[
    "IMAGE", "ITEM_IMAGE", "ITEM_VIDEO", "REELS", "STORY_IMAGE", "STORY_VIDEO", "CAROUSEL"
]
MediaKind = Literal["image", "video"]

DEFAULT_ACCOUNT_ID = "17841400000000001"

# Generated ids live in their own ranges so an unknown id can be told apart from an account.
CONTAINER_ID_BASE = 17_990_000_000_000_000
MEDIA_ID_BASE = 18_000_000_000_000_000
COMMENT_ID_BASE = 18_010_000_000_000_000
GENERATED_PREFIXES = ("1799", "1800", "1801")
MAX_COMMENTS_PAGE = 50  # Meta's page size cap for comments and replies


def graph_time(t: float) -> str:
    """Graph's timestamp format: 2026-01-31T12:00:00+0000."""
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S+0000")


@dataclass
class Account:
    ig_user_id: str
    username: str
    token: str | None = None  # None: any non-empty token is accepted
    token_expired: bool = False
    token_issued_at: float | None = None  # None: old enough to refresh
    token_expires_at: float | None = None  # None: no expiry of its own
    quota_total: int = 50
    quota_duration: int = 86400
    name: str = ""
    biography: str = ""
    website: str = ""
    followers_count: int = 0
    follows_count: int = 0
    profile_picture_url: str = ""
    page_id: str = ""  # Facebook Login: /{page-id}/messages stands for this account
    publish_times: list[float] = field(default_factory=list)  # for the publishing quota
    container_times: list[float] = field(default_factory=list)  # for the 400-a-day limit

    def snapshot(self) -> dict[str, Any]:
        return {
            "ig_user_id": self.ig_user_id,
            "username": self.username,
            "has_token": self.token is not None,
            "token_expired": self.token_expired,
            "token_issued_at": self.token_issued_at,
            "token_expires_at": self.token_expires_at,
            "quota_total": self.quota_total,
            "quota_duration": self.quota_duration,
            "name": self.name,
            "followers_count": self.followers_count,
        }


_FINISHED_TEXT = "Finished: Media has been uploaded and it is ready to be published."


@dataclass
class Failure:
    """Why a container ends in ERROR (reported by status, and by media_publish)."""

    code: int
    subcode: int
    message: str


@dataclass
class Upload:
    """Progress of a resumable (rupload) container."""

    file_size: int | None = None
    received: int = 0
    file_url: str | None = None
    completed_at: float | None = None
    digest: Any = field(default_factory=hashlib.sha256)


@dataclass
class Container:
    id: str
    account: str
    slot: Slot
    media: MediaKind | None  # None for a carousel parent
    url: str | None
    params: dict[str, str]
    created_at: float
    processing_s: float
    ready_at: float | None  # None while a resumable upload is incomplete
    failure: Failure | None = None
    children: list[str] = field(default_factory=list)
    upload: Upload | None = None
    published_at: float | None = None
    media_id: str | None = None
    parent_id: str | None = None  # carousel that consumed this item
    publish_attempts: int = 0

    @property
    def is_carousel_item(self) -> bool:
        return self.slot in ("ITEM_IMAGE", "ITEM_VIDEO")

    def status_code(self, now: float, ttl_s: float) -> str:
        if self.published_at is not None:
            return "PUBLISHED"
        if now >= self.created_at + ttl_s:
            return "EXPIRED"
        if self.ready_at is None or now < self.ready_at:
            return "IN_PROGRESS"
        return "ERROR" if self.failure else "FINISHED"

    def status_text(self, now: float, ttl_s: float) -> str:
        code = self.status_code(now, ttl_s)
        if code == "ERROR" and self.failure:
            # Meta's wording: the subcode only; the details come with media_publish's error
            return f"Error: Media upload has failed with error code {self.failure.subcode}"
        return {
            "PUBLISHED": "Published: Media has been published.",
            "EXPIRED": "Expired: Media was not published within 24 hours.",
            "IN_PROGRESS": (
                "In Progress: Waiting for the upload."
                if self.ready_at is None
                else "In Progress: Media is still being processed."
            ),
            "FINISHED": _FINISHED_TEXT,
        }[code]

    def reported_status(self, now: float, ttl_s: float, published_lag_s: float) -> tuple[str, str]:
        """(status_code, status) as `GET /{container-id}` answers: a published container
        may still say FINISHED for `published_lag_s` (Meta's view catching up)."""
        if self.published_at is not None and now < self.published_at + published_lag_s:
            return "FINISHED", _FINISHED_TEXT
        return self.status_code(now, ttl_s), self.status_text(now, ttl_s)

    def snapshot(self, now: float, ttl_s: float) -> dict[str, Any]:
        up = self.upload
        return {
            "id": self.id,
            "account": self.account,
            "kind": self.slot,
            "media": self.media,
            "url": self.url,
            "is_carousel_item": self.is_carousel_item,
            "params": dict(self.params),
            "children": list(self.children),
            "created_at": self.created_at,
            "processing_s": self.processing_s,
            "ready_at": self.ready_at,
            "status_code": self.status_code(now, ttl_s),
            "status": self.status_text(now, ttl_s),
            "error": (
                {
                    "code": self.failure.code,
                    "subcode": self.failure.subcode,
                    "message": self.failure.message,
                }
                if self.failure
                else None
            ),
            "resumable": up is not None,
            "file_size": up.file_size if up else None,
            "uploaded_bytes": up.received if up else 0,
            "upload_sha256": up.digest.hexdigest() if up and up.received else None,
            "file_url": up.file_url if up else None,
            "published_at": self.published_at,
            "media_id": self.media_id,
            "parent_id": self.parent_id,
            "publish_attempts": self.publish_attempts,
        }


@dataclass
class Media:
    id: str
    account: str
    username: str
    container_id: str
    media_type: str  # IMAGE, VIDEO, CAROUSEL_ALBUM
    product_type: str  # FEED, REELS, STORY
    published_at: float
    shortcode: str
    permalink: str
    media_url: str | None
    caption: str | None = None
    children: list[str] = field(default_factory=list)
    parent_id: str | None = None  # carousel album this child belongs to
    params: dict[str, str] = field(default_factory=dict)
    like_count: int = 0

    @property
    def is_top_level(self) -> bool:
        return self.parent_id is None

    def snapshot(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "account": self.account,
            "username": self.username,
            "container_id": self.container_id,
            "media_type": self.media_type,
            "media_product_type": self.product_type,
            "caption": self.caption,
            "permalink": self.permalink,
            "shortcode": self.shortcode,
            "timestamp": graph_time(self.published_at),
            "published_at": self.published_at,
            "media_url": self.media_url,
            "children": list(self.children),
            "params": dict(self.params),
        }


@dataclass
class Comment:
    id: str
    media_id: str
    text: str
    username: str
    from_id: str | None
    created_at: float
    parent_id: str | None = None
    hidden: bool = False
    like_count: int = 0
    replies: list[str] = field(default_factory=list)

    def snapshot(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "media_id": self.media_id,
            "text": self.text,
            "username": self.username,
            "from_id": self.from_id,
            "timestamp": graph_time(self.created_at),
            "created_at": self.created_at,
            "parent_id": self.parent_id,
            "hidden": self.hidden,
            "like_count": self.like_count,
            "replies": list(self.replies),
        }


_SHORTCODE_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def shortcode_for(media_id: str) -> str:
    """An 11-character shortcode derived from the media id (stable, unique per id)."""
    n = int(hashlib.sha256(media_id.encode()).hexdigest()[:16], 16)
    out = ""
    for _ in range(11):
        n, r = divmod(n, 64)
        out += _SHORTCODE_ALPHABET[r]
    return out
