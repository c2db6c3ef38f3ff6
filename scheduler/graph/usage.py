"""Meta's usage headers (X-App-Usage, X-Business-Use-Case-Usage) → typed figures.

X-App-Usage comes in two shapes (Facebook Login: call_count/total_cputime/total_time;
Instagram Login: call_volume/cpu_time); both land in the same `UsageFigures`.

The figures are whole percentages of a rolling allowance; the daemon spaces out or pauses work
from them (README "Limits, retries and crash safety"). Parsing never raises: a header we cannot read counts as absent, because
a malformed header must never turn a successful API call into a failure.
"""

from __future__ import annotations

import functools
import json
import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from multidict import CIMultiDict, CIMultiDictProxy

log = logging.getLogger(__name__)

APP_USAGE_HEADER = "x-app-usage"
BUC_USAGE_HEADER = "x-business-use-case-usage"
_BUC_TYPE = "instagram"


@dataclass(frozen=True)
class UsageFigures:
    """Percentages of the allowance used; `regain_minutes` only comes with BUC entries."""

    call_count: int
    total_cputime: int
    total_time: int
    regain_minutes: int = 0

    @property
    def max_pct(self) -> int:
        return max(self.call_count, self.total_cputime, self.total_time)

    @property
    def regain_seconds(self) -> float:
        return self.regain_minutes * 60.0

    def merged(self, other: UsageFigures) -> UsageFigures:
        """Element-wise maximum: when in doubt, assume the busier figure."""
        return UsageFigures(
            call_count=max(self.call_count, other.call_count),
            total_cputime=max(self.total_cputime, other.total_cputime),
            total_time=max(self.total_time, other.total_time),
            regain_minutes=max(self.regain_minutes, other.regain_minutes),
        )


def _merge_all(figures: Iterable[UsageFigures]) -> UsageFigures | None:
    result: UsageFigures | None = None
    for f in figures:
        result = f if result is None else result.merged(f)
    return result


@dataclass(frozen=True)
class Usage:
    """What one answer's headers said. `buc` is keyed by the object id Meta reports."""

    app: UsageFigures | None = None
    buc: dict[str, UsageFigures] = field(default_factory=dict)

    @property
    def is_empty(self) -> bool:
        return self.app is None and not self.buc

    def buc_figures(self, ig_user_id: str | None = None) -> UsageFigures | None:
        """BUC figures for one account, or the maximum over all objects.

        If the account's id is not among the keys we also fall back to all objects: the header
        on an answer only describes objects the calling token belongs to, and with Facebook
        Login the key may be a business or Page id rather than the IG user id.
        """
        if ig_user_id is not None and ig_user_id in self.buc:
            return self.buc[ig_user_id]
        return _merge_all(self.buc.values())

    def max_pct(self, ig_user_id: str | None = None) -> int:
        """The highest percentage among the app figures and the account's BUC figures."""
        candidates = [f.max_pct for f in (self.app, self.buc_figures(ig_user_id)) if f]
        return max(candidates, default=0)

    def regain_seconds(self, ig_user_id: str | None = None) -> float:
        """Meta's estimate of how long until calls are allowed again (0 when not throttled)."""
        buc = self.buc_figures(ig_user_id)
        return buc.regain_seconds if buc else 0.0


def _header(headers: Mapping[str, str], name: str) -> str | None:
    # httpx/aiohttp headers are case-insensitive already, plain dicts are not: compare lowered.
    try:
        if isinstance(headers, httpx.Headers | CIMultiDictProxy | CIMultiDict):
            value = headers.get(name)
            return value if isinstance(value, str) else None
        for key, value in headers.items():
            if isinstance(key, str) and key.lower() == name:
                return value if isinstance(value, str) else None
    except Exception:  # a broken mapping must not break the call either
        log.debug("could not read response headers", exc_info=True)
    return None


def _pct(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return max(value, 0)
    if isinstance(value, float | str):
        try:
            number = float(value)
        except ValueError:
            return None
        return max(int(number), 0) if math.isfinite(number) else None
    return None


# Each figure under every name Meta has been seen to use. With Instagram Login, X-App-Usage
# has come as {"call_volume": N, "cpu_time": N} (reported by client-library maintainers);
# with Facebook Login as {"call_count", "total_cputime", "total_time"}. A header that mixes
# them counts the busier value of a figure.
_NAMES: tuple[tuple[str, ...], ...] = (
    ("call_count", "call_volume"),
    ("total_cputime", "cpu_time"),
    ("total_time",),
)


def _figure(obj: dict[Any, Any], names: tuple[str, ...]) -> int | None:
    values = [v for v in (_pct(obj.get(name)) for name in names) if v is not None]
    return max(values) if values else None


def _figures(obj: Any, *, with_regain: bool) -> UsageFigures | None:
    if not isinstance(obj, dict):
        return None
    values = [_figure(obj, names) for names in _NAMES]
    if all(v is None for v in values):
        return None
    regain = _pct(obj.get("estimated_time_to_regain_access")) if with_regain else None
    call_count, cputime, total_time = (v or 0 for v in values)
    return UsageFigures(call_count, cputime, total_time, regain or 0)


def _json(raw: str | None, name: str) -> Any:
    if raw is None or not raw.strip():
        return None
    try:
        return json.loads(raw)
    except ValueError:
        log.debug("ignoring unreadable %s header", name)  # the value is not logged on purpose
        return None


def parse_usage(headers: Mapping[str, str]) -> Usage:
    """Read both usage headers; anything missing or malformed gives None / {}."""
    app, buc = _header(headers, APP_USAGE_HEADER), _header(headers, BUC_USAGE_HEADER)
    if len(app or "") + len(buc or "") > _CACHED_CHARS:
        return _parse.__wrapped__(app, buc)
    return _parse(app, buc)


_CACHED_CHARS = 2048  # the cache holds at most 1,024 such pairs: 4 MB of text at worst


@functools.lru_cache(maxsize=1024)
def _parse(app_header: str | None, buc_header: str | None) -> Usage:
    # cached: an account's answers repeat the same header text until its usage moves (one
    # parse per change, not per call); a Usage is not changed after it is made
    app = _figures(_json(app_header, APP_USAGE_HEADER), with_regain=False)

    buc: dict[str, UsageFigures] = {}
    raw_buc = _json(buc_header, BUC_USAGE_HEADER)
    if isinstance(raw_buc, dict):
        for object_id, entries in raw_buc.items():
            if isinstance(entries, dict):  # tolerate a single entry not wrapped in a list
                entries = [entries]
            if not isinstance(entries, list):
                continue
            for entry in entries:
                if not isinstance(entry, dict):
                    continue
                kind = entry.get("type")
                if not isinstance(kind, str) or kind.lower() != _BUC_TYPE:
                    continue
                figures = _figures(entry, with_regain=True)
                if figures is None:
                    continue
                key = str(object_id)
                buc[key] = buc[key].merged(figures) if key in buc else figures
    return Usage(app=app, buc=buc)
