"""Usage accounting behind `X-App-Usage` and `X-Business-Use-Case-Usage`.

Calls are counted per account (BUC) and app-wide over a rolling hour against configurable
budgets; figures are whole percentages. `call_count` drives throttling; the CPU and time
figures are fixed shares of it (the emulator does no real work worth measuring). A caller at
100 % is throttled, and its further calls still count, as Meta warns they extend the block.
Figures and throttling can also be forced, for a time on the emulator's clock.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Any, Literal

WINDOW_S = 3600.0
CPU_SHARE = 0.6
TIME_SHARE = 0.8
DEFAULT_ACCOUNT_CALLS_PER_HOUR = 4800
DEFAULT_APP_CALLS_PER_HOUR = 20000
# X-App-Usage shapes: "facebook" (call_count, total_cputime, total_time, as documented) or
# "instagram" (call_volume, cpu_time: what Instagram Login answers have been seen to carry).
APP_USAGE_SHAPES = ("facebook", "instagram")


@dataclass(frozen=True)
class Figures:
    call_count: int
    total_cputime: int
    total_time: int
    regain_minutes: int
    throttled: bool

    def app_header(self, shape: str = "facebook") -> dict[str, int]:
        """X-App-Usage in one of its two shapes (see `APP_USAGE_SHAPES`)."""
        if shape == "instagram":
            return {"call_volume": self.call_count, "cpu_time": self.total_cputime}
        return {
            "call_count": self.call_count,
            "total_cputime": self.total_cputime,
            "total_time": self.total_time,
        }

    def buc_entry(self) -> dict[str, Any]:
        return {
            "type": "instagram",
            "call_count": self.call_count,
            "total_cputime": self.total_cputime,
            "total_time": self.total_time,
            "estimated_time_to_regain_access": self.regain_minutes,
        }


@dataclass
class _Forced:
    pct: int | None  # None: only a throttle, figures otherwise computed
    regain_minutes: int
    until: float | None  # emulator time when the forcing ends; None: until cleared


Verdict = Literal["app", "account"] | None


class UsageMeter:
    """Rolling-hour call counts and budgets. Not thread-safe: the state's lock guards it."""

    def __init__(self) -> None:
        self.default_budget = DEFAULT_ACCOUNT_CALLS_PER_HOUR
        self.app_budget = DEFAULT_APP_CALLS_PER_HOUR
        self.budgets: dict[str, int] = {}
        self._calls: dict[str, deque[float]] = {}
        self._app_calls: deque[float] = deque()
        self._forced: dict[str, _Forced] = {}
        self._app_forced: _Forced | None = None

    # configuration
    def set_budget(self, account: str | None, calls_per_hour: int) -> None:
        if calls_per_hour < 1:
            raise ValueError("calls_per_hour must be at least 1")
        if account is None:
            self.default_budget = calls_per_hour
        else:
            self.budgets[account] = calls_per_hour

    def set_app_budget(self, calls_per_hour: int) -> None:
        if calls_per_hour < 1:
            raise ValueError("calls_per_hour must be at least 1")
        self.app_budget = calls_per_hour

    def force(self, account: str | None, pct: int | None, regain_minutes: int, now: float) -> None:
        """Report `pct` (None clears); at >= 100 the caller is throttled for regain_minutes."""
        if pct is None:
            if account is None:
                self._app_forced = None
            else:
                self._forced.pop(account, None)
            return
        until = now + regain_minutes * 60 if pct >= 100 and regain_minutes > 0 else None
        forced = _Forced(pct=int(pct), regain_minutes=int(regain_minutes), until=until)
        if account is None:
            self._app_forced = forced
        else:
            self._forced[account] = forced

    def throttle(self, account: str | None, duration_s: float, now: float) -> None:
        forced = _Forced(pct=None, regain_minutes=0, until=now + duration_s)
        if account is None:
            self._app_forced = forced
        else:
            self._forced[account] = forced

    # accounting
    def record(self, account: str | None, now: float) -> Verdict:
        """Count one call and say who throttled it (judged on usage before this call)."""
        verdict: Verdict = None
        if self.app_figures(now).throttled:
            verdict = "app"
        elif account is not None and self.account_figures(account, now).throttled:
            verdict = "account"
        self._app_calls.append(now)
        if account is not None:
            self._calls.setdefault(account, deque()).append(now)
        return verdict

    def account_figures(self, account: str, now: float) -> Figures:
        calls = self._calls.get(account, deque())
        base = _figures(calls, self.budgets.get(account, self.default_budget), now)
        return self._overlay(base, self._forced.get(account), now)

    def app_figures(self, now: float) -> Figures:
        base = _figures(self._app_calls, self.app_budget, now)
        return self._overlay(base, self._app_forced, now)

    def _overlay(self, base: Figures, forced: _Forced | None, now: float) -> Figures:
        if forced is None or (forced.until is not None and now >= forced.until):
            return base
        remaining = (
            max(1, math.ceil((forced.until - now) / 60)) if forced.until is not None else None
        )
        if forced.pct is None:  # a forced throttle
            pct = max(base.call_count, 100)
            return Figures(pct, pct, pct, remaining or 1, True)
        throttled = forced.pct >= 100
        regain = remaining if remaining is not None else forced.regain_minutes
        if throttled:
            regain = max(1, regain)
        return Figures(forced.pct, forced.pct, forced.pct, regain, throttled)

    def snapshot(self, now: float) -> dict[str, Any]:
        return {
            "default_calls_per_hour": self.default_budget,
            "app_calls_per_hour": self.app_budget,
            "budgets": dict(self.budgets),
            "app": self.app_figures(now).app_header(),
            "accounts": {a: self.account_figures(a, now).buc_entry() for a in self._calls},
        }


def _figures(calls: deque[float], budget: int, now: float) -> Figures:
    while calls and calls[0] <= now - WINDOW_S:
        calls.popleft()
    n = len(calls)
    pct = n * 100 // budget
    throttled = n >= budget
    regain = 0
    if throttled:
        # The window frees up once the (n - budget + 1) oldest calls have aged out.
        oldest_needed = calls[n - budget]
        regain = max(1, math.ceil((oldest_needed + WINDOW_S - now) / 60))
    return Figures(
        call_count=pct,
        total_cputime=int(pct * CPU_SHARE),
        total_time=int(pct * TIME_SHARE),
        regain_minutes=regain,
        throttled=throttled,
    )
