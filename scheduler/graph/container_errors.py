"""What a container in `ERROR` means: read the subcode out of its `status` text.

Meta reports a failed container as `status_code: ERROR` with a `status` text such as
`Error: Media upload has failed with error code 2207053`; the subcode in it says whether to
try again (2207001 server error, 2207003 download too slow), to make a new container
(2207032 creation failed, 2207053 unknown upload error, 2207020 expired) or to give up with
Meta's words (everything else, and a text without a subcode). Older emulator builds wrote
`Error: <subcode> <message>`; any text holding a 7-digit 2207xxx number is read the same way.

Pure: text in, verdict out. The text is Meta's, so it is treated as hostile: only the first
publishing subcode counts and the words kept for a reason are bounded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from scheduler.graph.errors import ErrorClass

# Meta's advice for these subcodes (facts sheet §5): the same request may work again.
RETRY_SUBCODES = frozenset({2207001, 2207003})
# The container itself is unusable: a new one may work.
RECREATE_SUBCODES = frozenset({2207032, 2207053, 2207020})

_SUBCODE = re.compile(r"(?<!\d)(2207\d{3})(?!\d)")
_MAX_WORDS = 500  # characters of Meta's text kept for a reason


@dataclass(frozen=True)
class ContainerError:
    """`error_class` is TRANSIENT (retry), RECREATE (new container) or PERMANENT (fail)."""

    error_class: ErrorClass
    subcode: int | None
    message: str  # Meta's words, for the post's reason

    @property
    def retry(self) -> bool:
        return self.error_class is ErrorClass.TRANSIENT

    @property
    def recreate(self) -> bool:
        return self.error_class is ErrorClass.RECREATE


def container_error_subcode(status: str | None) -> int | None:
    """The first 2207xxx subcode in a container's `status` text, if any."""
    if not isinstance(status, str):
        return None
    match = _SUBCODE.search(status)
    return int(match.group(1)) if match else None


def classify_container_error(status: str | None) -> ContainerError:
    """What to do about a container whose `status_code` is ERROR, from its `status` text."""
    text = status.strip() if isinstance(status, str) else ""
    words = " ".join(text.split())[:_MAX_WORDS] or "ERROR (Meta gave no reason)"
    subcode = container_error_subcode(text)
    if subcode in RETRY_SUBCODES:
        cls = ErrorClass.TRANSIENT
    elif subcode in RECREATE_SUBCODES:
        cls = ErrorClass.RECREATE
    else:
        cls = ErrorClass.PERMANENT
    return ContainerError(cls, subcode, words)
