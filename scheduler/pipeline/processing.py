"""Processing-time learning: how long Meta takes to process an account's containers.

Staging first asks for a container's status when it should be done: the expected processing
time of the account's recent containers of that media kind. The estimate lives in memory (an
exponential average per account and media kind) and, so that a restart does not fall back to
a guess, is seeded from the database the first time it is needed: the median of
`status_checked_at − container_created_at` over the account's last `SEED_ROWS` FINISHED
containers of that kind.

Each live observation is an interval: processing ended after the last IN_PROGRESS answer and
no later than the FINISHED one, and its midpoint is what is learnt. Learning only the time of
the FINISHED answer could never lower the estimate, since the first check is made at the
estimate itself. (The database keeps only the FINISHED check, so a seed errs on the long
side; live observations then bring it down.)
"""

from __future__ import annotations

import asyncio
import statistics
from datetime import datetime

from scheduler.store import Store

SEED_ROWS = 20
# first guess of container processing time (s) until the account's own history says better
DEFAULT_PROCESSING_S = {"image": 2.0, "video": 20.0}


def observed_processing_s(
    created: datetime, checked: datetime, previous_check: datetime | None, previous_status: str | None,
    expected_s: float | None = None,
) -> float | None:
    """The midpoint of the interval in which processing ended: after the last IN_PROGRESS
    answer (or the creation) and no later than the FINISHED answer at `checked`. None when
    the interval says little: a first check made long after the expected time (more than
    twice it, as a patient first check is) only bounds the time from above."""
    upper = (checked - created).total_seconds()
    lower = 0.0
    if previous_check is not None and previous_status == "IN_PROGRESS":
        lower = min(upper, max(0.0, (previous_check - created).total_seconds()))
    elif expected_s is not None and upper > 2 * expected_s:
        return None
    return (lower + max(upper, 0.0)) / 2


class ProcessingTimes:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.estimates: dict[tuple[str, str], float] = {}
        self.seeded: set[tuple[str, str]] = set()  # looked up in the database already

    def estimate_s(self, account: str, media_kind: str) -> float:
        """The current in-memory estimate (the default until something was learnt or seeded)."""
        return self.estimates.get((account, media_kind), DEFAULT_PROCESSING_S[media_kind])

    async def expected_s(self, account: str, media_kind: str) -> float:
        """The estimate, seeded once from the database after a start."""
        key = (account, media_kind)
        if key not in self.seeded:
            self.seeded.add(key)
            if key not in self.estimates:
                history = await asyncio.to_thread(self.store.recent_processing_s, account, media_kind, SEED_ROWS)
                if history:
                    self.estimates[key] = statistics.median(history)
        return self.estimate_s(account, media_kind)

    def observe(self, account: str, media_kind: str, seconds: float) -> None:
        """An exponential average of observed processing times."""
        old = self.estimates.get((account, media_kind))
        self.estimates[(account, media_kind)] = seconds if old is None else 0.7 * old + 0.3 * seconds
