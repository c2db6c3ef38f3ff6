"""Graph-shaped errors: the exceptions the emulator's model raises and how they are rendered.

Every API failure is a `GraphError`; the HTTP layer turns it into Meta's body
`{"error": {message, type, code, error_subcode, is_transient, error_user_title,
error_user_msg, fbtrace_id}}`. Like the real API, `error_subcode`, `error_user_title` and
`error_user_msg` are left out when an error has none, so clients learn to cope with that.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any


class GraphError(Exception):
    """An error answer of the Graph API."""

    def __init__(
        self,
        code: int,
        message: str,
        subcode: int | None = None,
        *,
        http_status: int = 400,
        type: str = "OAuthException",
        is_transient: bool = False,
        user_title: str | None = None,
        user_msg: str | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.subcode = subcode
        self.http_status = http_status
        self.type = type
        self.is_transient = is_transient
        self.user_title = user_title
        self.user_msg = user_msg

    def body(self, fbtrace_id: str) -> dict[str, Any]:
        err: dict[str, Any] = {"message": self.message, "type": self.type, "code": self.code}
        if self.subcode is not None:
            err["error_subcode"] = self.subcode
        err["is_transient"] = self.is_transient
        if self.user_title is not None:
            err["error_user_title"] = self.user_title
        if self.user_msg is not None:
            err["error_user_msg"] = self.user_msg
        err["fbtrace_id"] = fbtrace_id
        return {"error": err}


class UploadError(Exception):
    """A failure of the rupload endpoint, answered as `{"debug_info": {...}}`."""

    def __init__(self, message: str, *, retriable: bool = False, http_status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.retriable = retriable
        self.http_status = http_status
        self.type = "ProcessingFailedError"

    def body(self) -> dict[str, Any]:
        return {
            "debug_info": {"retriable": self.retriable, "type": self.type, "message": self.message}
        }


def new_fbtrace_id() -> str:
    """A random trace id shaped like Meta's (not drawn from the seeded fault RNG)."""
    return secrets.token_urlsafe(17)[:23]


@dataclass(frozen=True)
class PublishingErrorInfo:
    code: int
    message: str
    user_title: str
    is_transient: bool = False


# Instagram publishing errors by subcode, after Meta's error-code table (wording paraphrased).
PUBLISHING_ERRORS: dict[int, PublishingErrorInfo] = {
    2207001: PublishingErrorInfo(-1, "Instagram server error. Try again.", "Server error", True),
    2207003: PublishingErrorInfo(
        -2, "Downloading the media took too long.", "Media download timed out", True
    ),
    2207004: PublishingErrorInfo(
        36000, "The image is too large; it must be at most 8 MiB.", "Image too large"
    ),
    2207005: PublishingErrorInfo(
        36001, "The image format is not supported; use JPEG.", "Unsupported image format"
    ),
    2207006: PublishingErrorInfo(
        24,
        "The media could not be found; it may need a permission or the token expired.",
        "Media not found",
    ),
    2207008: PublishingErrorInfo(
        24,
        "Temporary error publishing the container, or the creation id expired.",
        "Temporary publishing error",
        True,
    ),
    2207009: PublishingErrorInfo(
        36003, "The aspect ratio is not supported.", "Unsupported aspect ratio"
    ),
    2207010: PublishingErrorInfo(36004, "The caption is too long.", "Caption too long"),
    2207020: PublishingErrorInfo(
        -2, "The media has expired; create the container again.", "Media expired"
    ),
    2207023: PublishingErrorInfo(100, "The media type is not supported.", "Unknown media type"),
    2207026: PublishingErrorInfo(
        352, "The video format is not supported.", "Unsupported video format"
    ),
    2207027: PublishingErrorInfo(
        9007,
        "Media ID is not available: the media is not ready for publishing yet.",
        "Media not ready",
    ),
    2207028: PublishingErrorInfo(
        100, "A carousel must have between 2 and 10 items.", "Invalid carousel size"
    ),
    2207032: PublishingErrorInfo(
        -1, "Creating the media failed; create the container again.", "Media creation failed"
    ),
    2207040: PublishingErrorInfo(
        100, "The caption has more than 20 @-mentions.", "Too many mentions"
    ),
    2207042: PublishingErrorInfo(
        9,
        "The account reached the maximum number of posts the Content Publishing API may "
        "publish in the rolling window.",
        "Publishing limit reached",
    ),
    2207050: PublishingErrorInfo(
        25, "The Instagram account is inactive, checkpointed or restricted.", "Account restricted"
    ),
    2207051: PublishingErrorInfo(
        4, "This action was restricted as suspected spam.", "Action blocked"
    ),
    2207052: PublishingErrorInfo(
        9004, "The media could not be fetched from the URL.", "Media fetch failed"
    ),
    2207053: PublishingErrorInfo(-1, "Unknown upload error.", "Upload failed"),
    2207057: PublishingErrorInfo(
        1,
        "The thumbnail offset must be at least 0 and less than the video duration.",
        "Thumbnail offset out of range",
    ),
}

# Default messages for errors injected by code alone.
GENERIC_MESSAGES: dict[int, str] = {
    1: "An unknown error occurred",
    2: "An unexpected error has occurred. Please retry your request later.",
    4: "(#4) Application request limit reached",
    10: "(#10) Application does not have permission for this action",
    17: "(#17) User request limit reached",
    20: "(#20) The comment could not be posted",
    32: "(#32) Page request limit reached",
    100: "(#100) Invalid parameter",
    190: "Invalid OAuth access token.",
    200: "(#200) Permissions error",
    368: "The action attempted has been deemed abusive or is otherwise disallowed",
    506: "(#506) Duplicate status message",
    613: "(#613) Calls to this api have exceeded the rate limit.",
    80002: "There have been too many calls to this Instagram account. Wait a bit and try again.",
}


def publishing_error(
    subcode: int, message: str | None = None, code: int | None = None
) -> GraphError:
    """The Instagram publishing error for `subcode` (code looked up when not given)."""
    info = PUBLISHING_ERRORS.get(subcode)
    if info is None:
        return GraphError(
            code if code is not None else -1,
            message or f"Media processing failed with error {subcode}.",
            subcode,
            user_title="Media processing failed",
            user_msg=message or f"Error {subcode}",
        )
    return GraphError(
        code if code is not None else info.code,
        message or info.message,
        subcode,
        is_transient=info.is_transient,
        user_title=info.user_title,
        user_msg=message or info.message,
    )


def code_for_subcode(subcode: int) -> int:
    info = PUBLISHING_ERRORS.get(subcode)
    return info.code if info else -1


def invalid_parameter(detail: str, subcode: int | None = None) -> GraphError:
    """Code 100 for a request the API refuses as malformed; the detail says what and where."""
    return GraphError(
        100,
        f"Invalid parameter: {detail}",
        subcode,
        user_title="Invalid parameter",
        user_msg=detail,
    )


def object_missing(object_id: str, method: str = "get") -> GraphError:
    """100/33: what Graph says for an unknown id (or one the token may not see)."""
    return GraphError(
        100,
        f"Unsupported {method.lower()} request. Object with ID '{object_id}' does not exist, "
        "cannot be loaded due to missing permissions, or does not support this operation.",
        33,
        type="GraphMethodException",
    )


def unsupported(method: str, path: str) -> GraphError:
    return GraphError(
        100,
        f"Unsupported {method.lower()} request: {path}",
        type="GraphMethodException",
    )


def generic(
    code: int,
    subcode: int | None = None,
    message: str | None = None,
    *,
    http_status: int = 400,
    is_transient: bool = False,
    type: str | None = None,
) -> GraphError:
    """An error built from a code (and subcode), e.g. for injections."""
    if subcode is not None and subcode in PUBLISHING_ERRORS and code == code_for_subcode(subcode):
        err = publishing_error(subcode, message)
        err.http_status = http_status
        err.is_transient = err.is_transient or is_transient
        if type:
            err.type = type
        return err
    return GraphError(
        code,
        message or GENERIC_MESSAGES.get(code, f"(#{code}) Error"),
        subcode,
        http_status=http_status,
        type=type
        or ("GraphMethodException" if code == 100 and subcode == 33 else "OAuthException"),
        is_transient=is_transient,
    )
