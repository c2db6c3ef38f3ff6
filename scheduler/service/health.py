"""Does something need a person? The verdict behind `igsched status`'s exit code. Pure.

A person is needed for an account that needs re-authorisation, a token with fewer than 7 days
left (refreshing has not worked), or a daemon that has not ticked for a minute (stuck or gone,
while it still counts as running).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

STALE_TICK = timedelta(minutes=1)
TOKEN_DAYS_NEEDING_A_PERSON = 7.0


@dataclass(frozen=True)
class DaemonSeen:
    identity: str
    last_tick_at: datetime
    stopped: bool = False  # stopped cleanly: not a problem


@dataclass(frozen=True)
class Health:
    problems: list[str] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return not self.problems

    @property
    def exit_code(self) -> int:
        return 0 if self.healthy else 1


def assess(
    now: datetime,
    daemons: Iterable[DaemonSeen],
    needs_reauth: Iterable[str],
    token_seconds_left: Mapping[str, float | None],
    stale_after: timedelta = STALE_TICK,
    unreadable_tokens: Mapping[str, str] | None = None,
) -> Health:
    """Every reason a person is needed, each naming what and what to do. `unreadable_tokens`:
    accounts whose configured token cannot be read (and no refreshed one is stored), with
    why: their posts wait until a person fixes it."""
    problems: list[str] = []
    for _account, why in sorted((unreadable_tokens or {}).items()):
        problems.append(f"no token: {why}; its posts wait")
    for account in sorted(set(needs_reauth)):
        problems.append(f"account {account} needs re-authorisation: log in again and update "
                        "its token")
    for account, left in sorted(token_seconds_left.items()):
        if left is None:
            continue
        if left <= 0:
            problems.append(f"account {account}: token expired: log in again")
        elif left < TOKEN_DAYS_NEEDING_A_PERSON * 86400:
            problems.append(f"account {account}: token expires in {left / 86400:.1f} days and "
                            "has not been refreshed")
    for d in sorted(daemons, key=lambda d: d.identity):
        if d.stopped:
            continue
        quiet = now - d.last_tick_at
        if quiet > stale_after:
            problems.append(f"daemon {d.identity}: no tick for {int(quiet.total_seconds())} s")
    return Health(problems)
