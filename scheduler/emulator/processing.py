"""How long a container takes to process and how it ends.

Decided when processing starts (at creation, or when a resumable upload completes), from, in
increasing precedence: the defaults per media kind, the first matching media rule (a URL
substring), and hints in the media URL's own query (`emu_processing_s`, `emu_fail`,
`emu_fail_message`) so a queue file alone can script an outcome.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath
from urllib.parse import parse_qs, unquote, urlsplit

from .errors import PUBLISHING_ERRORS, code_for_subcode
from .models import Failure, MediaKind

IMAGE_EXTENSIONS = (".jpg", ".jpeg")
VIDEO_EXTENSIONS = (".mp4", ".mov", ".m4v")


@dataclass
class MediaRule:
    """Media whose URL contains `substring` process this long and/or fail this way (the
    failure only for the first `times` containers, when set: a fault that goes away)."""

    substring: str
    processing_s: float | None = None
    fail_subcode: int | None = None
    fail_message: str | None = None
    fail_code: int | None = None
    times: int | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "substring": self.substring,
            "processing_s": self.processing_s,
            "fail_subcode": self.fail_subcode,
            "fail_message": self.fail_message,
            "fail_code": self.fail_code,
            "times": self.times,
        }


@dataclass(frozen=True)
class Outcome:
    processing_s: float
    failure: Failure | None


def plan_processing(
    url: str | None,
    media: MediaKind | None,
    defaults: dict[str, float],
    rules: list[MediaRule],
) -> Outcome:
    """Processing time and eventual failure for media at `url` (None: uploaded bytes)."""
    kind = media or "carousel"
    processing = float(defaults.get(kind, defaults.get("image", 0.3)))
    failure = _format_failure(url, media) if url else None
    if url:
        for rule in rules:
            if rule.substring in url:
                if rule.processing_s is not None:
                    processing = rule.processing_s
                if rule.fail_subcode is not None and (rule.times is None or rule.times > 0):
                    failure = _failure(rule.fail_subcode, rule.fail_message, rule.fail_code)
                    if rule.times is not None:
                        rule.times -= 1
                break
        hints = parse_qs(urlsplit(url).query)
        if "emu_processing_s" in hints:
            processing = float(hints["emu_processing_s"][0])
        if "emu_fail" in hints:
            message = hints.get("emu_fail_message", [None])[0]
            failure = _failure(int(hints["emu_fail"][0]), message, None)
    return Outcome(processing_s=max(0.0, processing), failure=failure)


def _failure(subcode: int, message: str | None, code: int | None) -> Failure:
    info = PUBLISHING_ERRORS.get(subcode)
    return Failure(
        code=code if code is not None else code_for_subcode(subcode),
        subcode=subcode,
        message=message or (info.message if info else f"Media processing failed ({subcode})."),
    )


def _format_failure(url: str, media: MediaKind | None) -> Failure | None:
    """What Meta would find on fetching: a non-ASCII URL, or a format it does not take."""
    if not url.isascii():
        return _failure(2207052, "The media URL must be plain ASCII.", None)
    suffix = PurePosixPath(unquote(urlsplit(url).path)).suffix.lower()
    if media == "image" and suffix not in IMAGE_EXTENSIONS:
        return _failure(
            2207005, f"Only JPEG images are supported, not {suffix or 'this file'}.", None
        )
    if media == "video" and suffix and suffix not in VIDEO_EXTENSIONS:
        return _failure(2207026, f"The video format {suffix} is not supported.", None)
    return None
