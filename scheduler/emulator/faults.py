"""Fault switches (random, from a seeded RNG) and one-shot error injections."""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from .errors import GraphError, generic

# Endpoint names, as used in the request log, in injections and in `fault_endpoints`.
ENDPOINTS = (
    "media",  # POST /{ig-user-id}/media
    "media_list",  # GET /{ig-user-id}/media
    "media_publish",  # POST /{ig-user-id}/media_publish
    "content_publishing_limit",  # GET /{ig-user-id}/content_publishing_limit
    "stories",  # GET /{ig-user-id}/stories
    "me",  # GET /me
    "user",  # GET /{ig-user-id}
    "container_status",  # GET /{container-id}
    "media_info",  # GET /{media-id}
    "media_children",  # GET /{media-id}/children
    "comments",  # GET|POST /{media-id}/comments
    "replies",  # GET|POST /{comment-id}/replies
    "comment",  # GET|POST|DELETE /{comment-id}
    "upload",  # POST /ig-api-upload/{v}/{container-id}
    "refresh_access_token",  # GET /refresh_access_token
    "messages",  # POST /{ig-user-id|page-id|me}/messages (Send API, private replies)
    "mentions",  # POST /{ig-user-id}/mentions (a reply where another account @mentioned it)
    "profile",  # GET /{igsid}
    "subscribed_apps",  # POST /{ig-user-id}/subscribed_apps (webhook fields)
    "unknown",  # anything else
)


REPUBLISH_ANSWERS = ("already_published", "2207008", "2207006", "same_id")

# Codes Meta marks is_transient: the generic retry-later errors and throttling.
TRANSIENT_CODES = frozenset({1, 2, 4, 17, 32, 341, 613, 80001, 80002, 80006})


@dataclass
class FaultSettings:
    """Random faults; each rate is a probability per matching Graph request."""

    latency_s: float = 0.0
    latency_jitter_s: float = 0.0  # uniform extra delay in [0, jitter]
    drop_rate: float = 0.0  # close the connection before doing anything
    drop_after_rate: float = 0.0  # do the work, then close the connection (answer lost)
    error500_rate: float = 0.0  # HTTP 500, Graph code 1 or 2, is_transient
    late_publish_rate: float = 0.0  # media_publish succeeds, the answer comes too late
    late_publish_delay_s: float = 35.0
    comment_error_after_create_rate: float = 0.0  # comment created, answer is an error
    comment_error_http500: bool = False  # ... as HTTP 500 rather than 20/1772107
    fault_endpoints: list[str] | None = None  # None: every Graph endpoint
    new_object_not_found_s: float = 0.0  # reads of younger containers/media → 100/33
    expired_publish_error: int = 2207020  # or 2207008 (24/2207008) for EXPIRED containers
    # media_publish of a container that is already PUBLISHED (Meta does not document it):
    # "already_published" (100, no subcode), "2207008" (24/2207008, as after a lost answer),
    # "2207006" (24/2207006) or "same_id" (200 with the media id of the first publish)
    republish_answer: str = "already_published"
    # for this long after a publish, GET /{container-id} still says FINISHED (the media is
    # live and listed): a client that trusts the status alone publishes the container again
    published_status_lag_s: float = 0.0

    def applies_to(self, endpoint: str) -> bool:
        return self.fault_endpoints is None or endpoint in self.fault_endpoints

    def snapshot(self) -> dict[str, Any]:
        return asdict(self)

    def update(self, values: dict[str, Any]) -> None:
        names = {f.name for f in fields(self)}
        for key, value in values.items():
            if key not in names:
                raise ValueError(f"unknown fault setting {key!r}")
            if key == "fault_endpoints" and value is not None:
                unknown = set(value) - set(ENDPOINTS)
                if unknown:
                    raise ValueError(f"unknown endpoints in fault_endpoints: {sorted(unknown)}")
                value = list(value)
            if key == "expired_publish_error" and int(value) not in (2207020, 2207008):
                raise ValueError("expired_publish_error must be 2207020 or 2207008")
            if key == "republish_answer" and value not in REPUBLISH_ANSWERS:
                raise ValueError(f"republish_answer must be one of {', '.join(REPUBLISH_ANSWERS)}")
            setattr(self, key, value)


@dataclass(frozen=True)
class FaultRoll:
    """What the dice said for one request."""

    delay_s: float = 0.0
    drop: bool = False
    drop_after: bool = False
    error500: GraphError | None = None
    late_publish: bool = False
    comment_error: bool = False


def roll(settings: FaultSettings, rng: random.Random, endpoint: str, method: str) -> FaultRoll:
    if not settings.applies_to(endpoint):
        return FaultRoll()
    delay = settings.latency_s
    if settings.latency_jitter_s > 0:
        delay += rng.uniform(0, settings.latency_jitter_s)
    drop = settings.drop_rate > 0 and rng.random() < settings.drop_rate
    error500 = None
    if not drop and settings.error500_rate > 0 and rng.random() < settings.error500_rate:
        code = rng.choice((1, 2))
        error500 = generic(code, http_status=500, is_transient=True)
    drop_after = settings.drop_after_rate > 0 and rng.random() < settings.drop_after_rate
    late = (
        endpoint == "media_publish"
        and settings.late_publish_rate > 0
        and rng.random() < settings.late_publish_rate
    )
    comment_error = (
        endpoint in ("comments", "replies", "mentions")
        and method == "POST"
        and settings.comment_error_after_create_rate > 0
        and rng.random() < settings.comment_error_after_create_rate
    )
    return FaultRoll(delay, drop, drop_after, error500, late, comment_error)


FAULT_KINDS = ("drop", "drop_after", "late")


@dataclass
class FaultInjection:
    """The next `count` matching requests get a transport fault instead of a dice roll:
    "drop" (connection closed before any work), "drop_after" (work done, answer lost) or
    "late" (media_publish only: done, answered after `late_publish_delay_s`)."""

    endpoint: str
    kind: str
    count: int = 1
    account: str | None = None
    used: int = field(default=0)

    def matches(self, endpoint: str, account: str | None) -> bool:
        return (
            self.used < self.count
            and self.endpoint == endpoint
            and (self.account is None or self.account == account)
        )

    def apply(self, dice: FaultRoll) -> FaultRoll:
        return replace(
            dice,
            drop=self.kind == "drop",
            drop_after=self.kind == "drop_after",
            late_publish=self.kind == "late",
            error500=None,
        )

    def snapshot(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Injection:
    """The next `count` matching requests get this error (after=True: after doing the work)."""

    endpoint: str
    code: int
    subcode: int | None = None
    http_status: int = 400
    message: str | None = None
    is_transient: bool = False
    count: int = 1
    account: str | None = None
    method: str | None = None
    after: bool = False
    type: str | None = None
    used: int = field(default=0)

    def matches(self, endpoint: str, account: str | None, method: str, after: bool) -> bool:
        return (
            self.used < self.count
            and self.endpoint == endpoint
            and self.after == after
            and (self.account is None or self.account == account)
            and (self.method is None or self.method.upper() == method)
        )

    def error(self) -> GraphError:
        return generic(
            self.code,
            self.subcode,
            self.message,
            http_status=self.http_status,
            is_transient=self.is_transient,
            type=self.type,
        )

    def snapshot(self) -> dict[str, Any]:
        return asdict(self)
