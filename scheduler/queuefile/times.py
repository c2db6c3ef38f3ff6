"""Queue-file times → aware UTC datetimes (README "Queue files").

Accepted: an ISO 8601 time with an offset, a local time read in an IANA timezone, the
datetime/date objects PyYAML makes of unquoted timestamps, and `now`. A local time that
falls into a daylight-saving gap or fold is refused rather than guessed.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

EXAMPLES = "e.g. 2026-12-01 09:00 (with a timezone set) or 2026-12-01T09:00:00+01:00, or now"

# Lenient on purpose: one-digit hours/months and a space or 'T' are all common in hand-written
# files, and fromisoformat() in 3.11 refuses some of them.
_TIME_RE = re.compile(
    r"^(?P<y>\d{4})-(?P<mo>\d{1,2})-(?P<d>\d{1,2})[T ]+(?P<h>\d{1,2}):(?P<mi>\d{2})"
    r"(?::(?P<s>\d{2})(?:[.,](?P<frac>\d{1,6}))?)?"
    r"\s*(?P<off>Z|z|[+-]\d{2}(?::?\d{2})?)?$"
)
_DATE_RE = re.compile(r"^\d{4}-\d{1,2}-\d{1,2}$")


class TimeProblem(ValueError):
    """A time that cannot be used; the message is meant for the person who wrote it."""


class NoTimezone(TimeProblem):
    """A local time (no UTC offset) was given, but no timezone to read it in."""


@dataclass(frozen=True)
class ParsedAt:
    utc: datetime | None  # None: `now`, as soon as the post is ready
    shown: str  # how to name the time back to the user (as written, plus the timezone)


def type_name(value: object) -> str:
    """A value's type in words a non-programmer knows."""
    if value is None:
        return "nothing (the value is empty)"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, datetime):
        return "a date and time"
    if isinstance(value, date):
        return "a date"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping (key: value pairs)"
    return type(value).__name__


@cache
def _all_zones() -> tuple[str, ...]:
    return tuple(sorted(available_timezones()))


def load_timezone(name: object) -> ZoneInfo:
    """An IANA timezone by name, or TimeProblem saying what is wrong (with a suggestion)."""
    if not isinstance(name, str):
        raise TimeProblem(f"timezone must be text like Europe/Berlin, got {type_name(name)}")
    try:
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError, OSError):
        pass
    near = difflib.get_close_matches(name.strip(), _all_zones(), n=1, cutoff=0.8)
    hint = f" (did you mean '{near[0]}'?)" if near else ""
    raise TimeProblem(
        f"unknown timezone '{name}'{hint}; use an IANA name such as Europe/Berlin or "
        "America/New_York, or write the times with a UTC offset"
    )


def _fmt_local(naive: datetime) -> str:
    fmt = "%Y-%m-%d %H:%M:%S" if naive.second or naive.microsecond else "%Y-%m-%d %H:%M"
    return naive.strftime(fmt)


def _fmt_offset(off: timedelta | None) -> str:
    minutes = int((off or timedelta()).total_seconds() // 60)
    sign = "-" if minutes < 0 else "+"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def _offset(text: str) -> tzinfo:
    if text in ("Z", "z"):
        return UTC
    sign = -1 if text[0] == "-" else 1
    digits = text[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:4] or 0)
    if hours > 23 or minutes > 59:
        raise TimeProblem(f"the UTC offset {text} is not valid")
    return timezone(sign * timedelta(hours=hours, minutes=minutes))


def _from_text(text: str) -> datetime:
    """A datetime (naive or aware) from the text forms we accept."""
    s = text.strip()
    if _DATE_RE.match(s):
        try:
            date.fromisoformat("-".join(p.zfill(2) for p in s.split("-")))
        except ValueError as e:  # 2027-13-45: the date itself is wrong, say that first
            raise TimeProblem(f"at '{s}' is not a date ({e})") from None
        raise TimeProblem(f"at '{s}' is a date without a time of day; write e.g. {s} 09:00")
    m = _TIME_RE.match(s)
    if m is None and ":" not in s and "T" not in s.upper():  # e.g. 2026-W49-1: still a date
        raise TimeProblem(f"at '{s}' has no time of day; {EXAMPLES}")
    if m is None:
        try:  # other valid ISO 8601 spellings, e.g. the basic format 20261201T0900
            return datetime.fromisoformat(s)
        except ValueError:
            raise TimeProblem(
                f"at '{s}' is not a date and time that can be read; {EXAMPLES}"
            ) from None
    frac = (m["frac"] or "").ljust(6, "0")
    try:
        tz = _offset(m["off"]) if m["off"] else None
        return datetime(
            int(m["y"]), int(m["mo"]), int(m["d"]), int(m["h"]), int(m["mi"]),
            int(m["s"] or 0), int(frac or 0), tzinfo=tz,
        )  # fmt: skip
    except ValueError as e:  # e.g. month 13, 25 o'clock
        raise TimeProblem(f"at '{s}' is not a valid date and time: {e}") from None


def localize(naive: datetime, tz: ZoneInfo, tz_name: str) -> datetime:
    """Attach `tz` to a wall-clock time; refuse times that DST skips or repeats."""
    first = naive.replace(tzinfo=tz, fold=0)
    second = naive.replace(tzinfo=tz, fold=1)
    if first.utcoffset() == second.utcoffset():
        return first
    shown = _fmt_local(naive)
    # A time in the gap does not survive a round trip through UTC; a repeated one does.
    round_trip = first.astimezone(UTC).astimezone(tz).replace(tzinfo=None)
    if round_trip != naive:
        raise TimeProblem(
            f"at {shown} does not exist in {tz_name}: the clocks jump forward over it "
            "(daylight saving time starts); pick a time outside the gap or write a UTC offset"
        )
    iso = naive.strftime("%Y-%m-%dT%H:%M:%S")
    raise TimeProblem(
        f"at {shown} is ambiguous in {tz_name}: it happens twice because the clocks go back "
        f"(daylight saving time ends); write it with a UTC offset, e.g. "
        f"{iso}{_fmt_offset(first.utcoffset())} (the first) or "
        f"{iso}{_fmt_offset(second.utcoffset())} (the second)"
    )


def parse_at(value: object, tz: ZoneInfo | None, tz_name: str | None) -> ParsedAt:
    """Read a post's `at`; `tz` is the post's (or file's) timezone, if any.

    Raises TimeProblem with a message naming what was written and what is accepted.
    """
    if isinstance(value, str) and value.strip().lower() == "now":
        return ParsedAt(None, "now")
    if isinstance(value, datetime):
        when = value
    elif isinstance(value, date):
        raise TimeProblem(
            f"at {value.isoformat()} is a date without a time of day; "
            f"write e.g. {value.isoformat()} 09:00"
        )
    elif isinstance(value, str):
        when = _from_text(value)
    else:
        raise TimeProblem(f"at must be a date and time ({EXAMPLES}), got {type_name(value)}")

    try:
        return _in_utc(value, when, tz, tz_name)
    except OverflowError:  # year 9999 at a negative offset, year 1 at a positive one
        shown = value.strip() if isinstance(value, str) else when.isoformat()
        raise TimeProblem(
            f"at {shown} is outside the range of times that can be used; {EXAMPLES}"
        ) from None


def _in_utc(value: object, when: datetime, tz: ZoneInfo | None, tz_name: str | None) -> ParsedAt:
    if when.tzinfo is not None and when.utcoffset() is not None:
        shown = value.strip() if isinstance(value, str) else when.isoformat()
        return ParsedAt(when.astimezone(UTC), shown)
    if tz is None or tz_name is None:
        raise NoTimezone(
            f"at {_fmt_local(when)} has no UTC offset and no timezone is set; add an offset "
            "(e.g. 2026-12-01T09:00:00+01:00) or set timezone (e.g. timezone: Europe/Berlin) "
            "on the post or at the top of the file"
        )
    local = localize(when, tz, tz_name)
    return ParsedAt(local.astimezone(UTC), f"{_fmt_local(when)} {tz_name}")


def past_problem(at: ParsedAt, now: datetime, grace_s: float) -> str | None:
    """A message if `at` lies more than `grace_s` before `now` (both aware), else None."""
    if at.utc is None or at.utc >= now - timedelta(seconds=grace_s):
        return None
    return (
        f"at {at.shown} is in the past (it is now {now.astimezone(UTC):%Y-%m-%d %H:%M} UTC); "
        "use a future time, or at: now to publish as soon as possible"
    )
