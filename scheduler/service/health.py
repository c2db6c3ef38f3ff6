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
    waiting_posts: int = 0,
) -> Health:
    """Every reason a person is needed, each naming what and what to do. `waiting_posts`:
    posts the daemon put in `waiting` (their account's token could not be read, the account
    is not configured, or it needs re-authorisation): only a person moves them on. Counted
    from what the daemon recorded, not from what this process can read (a monitoring check
    runs without the daemon's environment and credentials)."""
    problems: list[str] = []
    if waiting_posts:
        problems.append(f"{waiting_posts} post{'s' if waiting_posts != 1 else ''} waiting for their account "
                        "(a token that cannot be read, an account not configured or needing re-authorisation): "
                        "`igsched list --state waiting` says why")
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
