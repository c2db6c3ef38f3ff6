"""Graph API error taxonomy: what a failed call means for the post, and the exceptions.

`classify` is pure and table-driven (Meta's documented codes and subcodes). The exceptions carry Meta's fields for the
history table; their messages pass through `redact`, so a token that Meta (or a transport
library) echoes back never reaches a log line, a repr or a call record.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from scheduler.redaction import redact  # the one redaction seam, used for every message here

if TYPE_CHECKING:
    from scheduler.graph.usage import Usage


class ErrorClass(enum.Enum):
    TRANSIENT = "transient"  # retry with backoff
    RECREATE = "recreate"  # the container is unusable: make a new one
    RETRY_THEN_RECREATE = "retry_then_recreate"  # 24/2207008: retry 1-2x, then recreate
    NOT_READY = "not_ready"  # poll the container until FINISHED, then publish
    QUOTA = "quota"  # publishing quota used up: wait for the rolling window
    THROTTLED = "throttled"  # this account is rate-limited: stop calling it for a while
    APP_THROTTLED = "app_throttled"  # the whole app is rate-limited: pause every account
    SPAM = "spam"  # flagged as spam: back off hard, never loop
    AUTH = "auth"  # token invalid or permission missing: the account needs re-authorisation
    # 25/2207050: the account is restricted or checkpointed; a person must act in the
    # Instagram app. Not the post's fault: pause the account as needing a person.
    ACCOUNT_RESTRICTED = "account_restricted"
    # 368: temporarily blocked for policy reasons; Meta says wait and retry: pause the
    # account with a backoff rather than fail the post.
    POLICY_BLOCKED = "policy_blocked"
    AMBIGUOUS = "ambiguous"  # the request may or may not have taken effect: verify first
    NOT_FOUND_FRESH = "not_found_fresh"  # 100/33: transient for an id we just created
    PERMANENT = "permanent"  # retrying the same request cannot help


_C = ErrorClass

# (code, subcode) rows win over code-only rows; both win over is_transient.
BY_CODE_SUBCODE: Mapping[tuple[int, int], ErrorClass] = {
    (-2, 2207003): _C.TRANSIENT,
    (-1, 2207001): _C.TRANSIENT,
    (-1, 2207032): _C.RECREATE,
    (-1, 2207053): _C.RECREATE,
    (-2, 2207020): _C.RECREATE,
    (24, 2207008): _C.RETRY_THEN_RECREATE,
    (24, 2207006): _C.RECREATE,
    (9007, 2207027): _C.NOT_READY,
    (9004, 2207052): _C.PERMANENT,
    (9, 2207042): _C.QUOTA,
    (4, 2207051): _C.SPAM,
    (25, 2207050): _C.ACCOUNT_RESTRICTED,
    (352, 2207026): _C.PERMANENT,
    (36000, 2207004): _C.PERMANENT,
    (36001, 2207005): _C.PERMANENT,
    (36003, 2207009): _C.PERMANENT,
    (36004, 2207010): _C.PERMANENT,
    (1, 2207057): _C.PERMANENT,  # thumb_offset out of range, despite generic code 1
    (100, 2207023): _C.PERMANENT,
    (100, 2207028): _C.PERMANENT,
    (100, 2207040): _C.PERMANENT,
    (100, 33): _C.NOT_FOUND_FRESH,
    # Comment POST that created the comment anyway (third-party report): look before retrying.
    (20, 1772107): _C.AMBIGUOUS,
    # Messaging: about the recipient, not our token, so not AUTH despite codes 10 / 2xx.
    (10, 2534022): _C.PERMANENT,
    (200, 2534041): _C.PERMANENT,
}

BY_CODE: Mapping[int, ErrorClass] = {
    1: _C.TRANSIENT,
    2: _C.TRANSIENT,
    -1: _C.TRANSIENT,  # Instagram server error with a subcode not in the table
    -2: _C.TRANSIENT,
    4: _C.APP_THROTTLED,
    341: _C.APP_THROTTLED,
    17: _C.THROTTLED,
    32: _C.THROTTLED,
    613: _C.THROTTLED,
    80001: _C.THROTTLED,
    80002: _C.THROTTLED,
    80006: _C.THROTTLED,
    9: _C.QUOTA,
    9007: _C.NOT_READY,
    24: _C.RETRY_THEN_RECREATE,  # container id problem with an unknown subcode: the mild path
    10: _C.AUTH,
    102: _C.AUTH,
    190: _C.AUTH,
    368: _C.POLICY_BLOCKED,
}

_PERMISSION_CODES = range(200, 300)  # "missing permission" family → AUTH
_BUC_THROTTLE_CODES = range(80000, 80100)  # every BUC rate-limit code Meta uses sits here


def classify(
    code: int | None,
    subcode: int | None,
    is_transient: bool | None,
    http_status: int | None,
) -> ErrorClass:
    """What a failed call means. `code is None` means there was no Graph error body."""
    if code is None:
        if http_status is None or http_status >= 500 or 200 <= http_status < 300:
            return _C.AMBIGUOUS  # no answer, a server failure, or an answer we could not read
        if http_status == 429:
            return _C.THROTTLED
        if http_status == 408:
            return _C.TRANSIENT  # the server says it did not get the whole request
        return _C.PERMANENT  # e.g. an HTML 404 from a proxy: a configuration problem
    if subcode:
        specific = BY_CODE_SUBCODE.get((code, subcode))
        if specific is not None:
            return specific
    by_code = BY_CODE.get(code)
    if by_code is not None:
        return by_code
    if code in _PERMISSION_CODES:
        return _C.AUTH
    if code in _BUC_THROTTLE_CODES:
        return _C.THROTTLED
    if is_transient:
        return _C.TRANSIENT
    return _C.PERMANENT


# Short labels for messages; Meta's own message follows them.
_LABELS_BY_CODE_SUBCODE: Mapping[tuple[int, int], str] = {
    (-2, 2207003): "media download took too long",
    (-1, 2207001): "Instagram server error",
    (-1, 2207032): "container creation failed",
    (-1, 2207053): "unknown upload error",
    (-2, 2207020): "media expired",
    (24, 2207008): "creation id missing or expired",
    (24, 2207006): "media not found",
    (9007, 2207027): "media not ready",
    (9004, 2207052): "media could not be fetched",
    (9, 2207042): "daily publishing limit reached",
    (4, 2207051): "flagged as spam",
    (25, 2207050): "account restricted",
    (352, 2207026): "unsupported video format",
    (36000, 2207004): "image too large",
    (36001, 2207005): "unsupported image format",
    (36003, 2207009): "aspect ratio out of range",
    (36004, 2207010): "caption too long",
    (1, 2207057): "thumb_offset out of range",
    (100, 2207023): "unknown media type",
    (100, 2207028): "carousel needs 2-10 items",
    (100, 2207040): "too many @-mentions",
    (100, 33): "object does not exist",
    (20, 1772107): "comment may have been created",
    (10, 2534022): "outside the messaging window",
    (200, 2534041): "recipient does not accept messages",
}
_LABELS_BY_CODE: Mapping[int, str] = {
    1: "temporary API error",
    2: "service temporarily unavailable",
    4: "application request limit reached",
    9: "publishing limit reached",
    10: "permission denied",
    17: "user request limit reached",
    32: "page request limit reached",
    102: "session invalid",
    190: "access token invalid or expired",
    341: "application limit reached",
    368: "blocked by policy",
    506: "duplicate post",
    551: "person unavailable",
    613: "rate limit reached",
    9007: "media not ready",
    80001: "Pages rate limit reached",
    80002: "Instagram rate limit reached",
    80006: "Messenger rate limit reached",
}


def describe(code: int | None, subcode: int | None) -> str | None:
    if code is None:
        return None
    if subcode and (code, subcode) in _LABELS_BY_CODE_SUBCODE:
        return _LABELS_BY_CODE_SUBCODE[(code, subcode)]
    if code in _LABELS_BY_CODE:
        return _LABELS_BY_CODE[code]
    if code in _PERMISSION_CODES:
        return "permission missing"
    if code in _BUC_THROTTLE_CODES:
        return "rate limit reached"
    return None


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return None
    return None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


class GraphError(Exception):
    """A call failed. `error_class` says what to do about it."""

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        subcode: int | None = None,
        type: str | None = None,  # Meta's field name
        is_transient: bool | None = None,
        fbtrace_id: str | None = None,
        http_status: int | None = None,
        user_title: str | None = None,
        user_msg: str | None = None,
        error_class: ErrorClass | None = None,
        usage: Usage | None = None,
        endpoint: str | None = None,
        secrets: Iterable[str] = (),
    ) -> None:
        secrets = tuple(secrets)  # used for several fields; never stored
        self.code = code
        self.subcode = subcode or None  # Meta sometimes sends 0 for "none"
        self.message = redact(message, secrets) or ""
        self.type = type
        self.is_transient = is_transient
        self.fbtrace_id = fbtrace_id
        self.http_status = http_status
        self.user_title = redact(user_title, secrets)
        self.user_msg = redact(user_msg, secrets)
        self.error_class = error_class or classify(code, self.subcode, is_transient, http_status)
        self.usage = usage  # the answer's usage headers, e.g. for the regain time when throttled
        self.endpoint = endpoint
        super().__init__(self.message)

    @classmethod
    def from_body(
        cls,
        error: Mapping[str, Any],
        *,
        http_status: int | None,
        usage: Usage | None = None,
        endpoint: str | None = None,
        secrets: Iterable[str] = (),
    ) -> GraphError:
        """Build from the `error` object of a Graph answer, tolerating odd field types."""
        transient = error.get("is_transient")
        return cls(
            _str(error.get("message")) or "(no message)",
            code=_int(error.get("code")),
            subcode=_int(error.get("error_subcode")),
            type=_str(error.get("type")),
            is_transient=transient if isinstance(transient, bool) else None,
            fbtrace_id=_str(error.get("fbtrace_id")),
            http_status=http_status,
            user_title=_str(error.get("error_user_title")),
            user_msg=_str(error.get("error_user_msg")),
            usage=usage,
            endpoint=endpoint,
            secrets=secrets,
        )

    def _head(self) -> str:
        if self.code is None:
            return f"Graph error HTTP {self.http_status}" if self.http_status else "Graph error"
        head = f"Graph error {self.code}"
        if self.subcode:
            head += f"/{self.subcode}"
        label = describe(self.code, self.subcode)
        return f"{head} ({label})" if label else head

    def __str__(self) -> str:
        text = f"{self._head()}: {self.message}"
        if self.fbtrace_id:
            text += f" [fbtrace_id {self.fbtrace_id}]"
        return text

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r}, error_class={self.error_class.name})"


class GraphUnavailable(GraphError):
    """No usable answer: timeout, refused or dropped connection, 5xx without a Graph body.

    `kind`: "connect" (never reached the server: safe to retry, TRANSIENT), or "timeout",
    "connection", "http_5xx", "bad_answer" (the request may have taken effect: AMBIGUOUS).
    """

    KINDS = ("connect", "timeout", "connection", "http_5xx", "bad_answer")

    def __init__(
        self,
        kind: str,
        message: str,
        *,
        http_status: int | None = None,
        usage: Usage | None = None,
        endpoint: str | None = None,
        secrets: Iterable[str] = (),
    ) -> None:
        if kind not in self.KINDS:
            raise ValueError(f"unknown kind {kind!r}")
        self.kind = kind
        super().__init__(
            message,
            http_status=http_status,
            error_class=ErrorClass.TRANSIENT if kind == "connect" else ErrorClass.AMBIGUOUS,
            usage=usage,
            endpoint=endpoint,
            secrets=secrets,
        )

    def __str__(self) -> str:
        status = f", HTTP {self.http_status}" if self.http_status else ""
        return f"Graph API unavailable ({self.kind}{status}): {self.message}"


class UploadError(GraphError):
    """The resumable upload answered with `debug_info` (or without `success`)."""

    def __init__(
        self,
        message: str,
        *,
        retriable: bool,
        type: str | None = None,  # Meta's field name
        http_status: int | None = None,
        usage: Usage | None = None,
        endpoint: str | None = None,
        secrets: Iterable[str] = (),
    ) -> None:
        self.retriable = retriable
        super().__init__(
            message,
            type=type,
            http_status=http_status,
            error_class=ErrorClass.TRANSIENT if retriable else ErrorClass.PERMANENT,
            usage=usage,
            endpoint=endpoint,
            secrets=secrets,
        )

    def __str__(self) -> str:
        what = "retriable" if self.retriable else "not retriable"
        kind = f", {self.type}" if self.type else ""
        return f"Upload failed ({what}{kind}): {self.message}"


# --- messaging refusals (DMs and private replies) ------------------------------------------
# Meta refuses a message because of the person, not our token: these are final for that
# message (PERMANENT), although codes 10 and 2xx otherwise mean a missing permission (AUTH).
# Throttling of the Send API (613, 80006, ...) is classified as for publishing above.
MESSAGING_REFUSALS: Mapping[tuple[int, int], str] = {
    (551, 1545041): "the person is not available (blocked the account or left Instagram)",
    (200, 2534041): "the person does not accept messages (DMs disabled)",
    (10, 2534022): "outside the messaging window (the person has not written within 24 h, "
    "or the comment is more than 7 days old)",
}
BY_CODE_SUBCODE = {**BY_CODE_SUBCODE, **dict.fromkeys(MESSAGING_REFUSALS, _C.PERMANENT)}
BY_CODE = {**BY_CODE, 551: _C.PERMANENT}
_LABELS_BY_CODE_SUBCODE = {
    **_LABELS_BY_CODE_SUBCODE,
    (551, 1545041): "person unavailable",
    (200, 2534041): "DMs disabled",
    (10, 2534022): "outside the messaging window",
}


def messaging_refusal(error: GraphError) -> str | None:
    """Why Meta refused a message because of its recipient, in words; None if it did not."""
    if error.code is None:
        return None
    if error.subcode and (error.code, error.subcode) in MESSAGING_REFUSALS:
        return MESSAGING_REFUSALS[(error.code, error.subcode)]
    if error.code == 551:
        return MESSAGING_REFUSALS[(551, 1545041)]
    return None
