"""Validated post specifications: what queue files turn into and what the store keeps.

Times are timezone-aware UTC datetimes. A spec is immutable and serialises to a JSON-able
dict, so the store can keep it verbatim and the pipeline can rebuild it after a restart.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

PostKind = Literal["image", "reel", "story", "carousel"]
MediaKind = Literal["image", "video"]
POST_KINDS: tuple[PostKind, ...] = ("image", "reel", "story", "carousel")


@dataclass(frozen=True)
class UserTag:
    username: str
    x: float | None = None  # 0.0-1.0 from the left; None where the API takes none (video)
    y: float | None = None


@dataclass(frozen=True)
class MediaItem:
    """One piece of media: the single media of a post, or one carousel item."""

    kind: MediaKind
    source: str  # https URL, or an absolute local file path (video: resumable upload)
    alt_text: str | None = None
    user_tags: tuple[UserTag, ...] = ()

    @property
    def is_local(self) -> bool:
        return not self.source.startswith(("http://", "https://"))


@dataclass(frozen=True)
class PostSpec:
    """One planned post, validated."""

    key: str
    account: str
    kind: PostKind
    at: datetime | None  # None: "as soon as it is ready" (`at: now`)
    media: tuple[MediaItem, ...]  # one item, or 2-10 for a carousel
    caption: str | None = None
    location_id: str | None = None
    collaborators: tuple[str, ...] = ()
    first_comment: str | None = None
    cover_url: str | None = None  # reels
    thumb_offset_ms: int | None = None  # reels
    share_to_feed: bool | None = None  # reels
    audio_name: str | None = None  # reels
    trial_graduation: str | None = None  # reels: MANUAL or SS_PERFORMANCE
    key_explicit: bool = field(default=False, compare=False)
    source_file: str | None = field(default=None, compare=False)

    def content(self) -> dict[str, Any]:
        """Everything that defines the post (not where it came from), JSON-able."""
        d = asdict(self)
        d.pop("key_explicit")
        d.pop("source_file")
        d["at"] = self.at.astimezone(UTC).isoformat() if self.at else None
        return d

    def content_hash(self) -> str:
        """Stable hash of the content; identity for posts without a key, change detector."""
        d = self.content()
        if not self.key_explicit:
            d.pop("key")
        blob = json.dumps(d, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()

    @staticmethod
    def from_content(d: dict[str, Any]) -> PostSpec:
        media = tuple(
            MediaItem(
                kind=m["kind"],
                source=m["source"],
                alt_text=m.get("alt_text"),
                user_tags=tuple(UserTag(**t) for t in m.get("user_tags", ())),
            )
            for m in d["media"]
        )
        at = datetime.fromisoformat(d["at"]) if d.get("at") else None
        rest = {k: v for k, v in d.items() if k not in ("media", "at", "collaborators")}
        return PostSpec(
            media=media, at=at, collaborators=tuple(d.get("collaborators", ())), **rest
        )


def derived_key(spec_hash: str) -> str:
    """Key for a post written without one: short, stable, recognisable."""
    return "h-" + spec_hash[:12]
