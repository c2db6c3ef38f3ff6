"""One refresh attempt: the call, and the facts to store afterwards (decisions in tokens.py)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from scheduler.graph.client import GraphClient
from scheduler.graph.errors import GraphError
from scheduler.service.tokens import Failure, RefreshFailure, TokenFacts, judge_failure, refreshed

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RefreshResult:
    facts: TokenFacts  # store these either way
    new_token: str | None = field(default=None, repr=False)  # encrypt before storing
    failure: RefreshFailure | None = None


async def attempt_refresh(
    client: GraphClient, account: str, token: str, facts: TokenFacts, now: datetime
) -> RefreshResult:
    """Ask for a new token. A "too young" refusal is logged at debug level only."""
    try:
        fresh = await client.refresh_token(token)
    except GraphError as e:
        failure = judge_failure(facts, now, e)
        if failure.kind is Failure.TOO_YOUNG:
            log.debug("token of %s not refreshed yet (younger than 24 h?): %s", account, e)
        elif failure.kind is Failure.NEEDS_REAUTH:
            log.error("token of %s cannot be refreshed: %s; log in again", account, e)
        else:
            log.warning("token refresh of %s failed (attempt %d): %s", account,
                        failure.facts.failures, e)
        return RefreshResult(failure.facts, failure=failure)
    new_facts = refreshed(now, fresh.expires_in) if fresh.expires_in else TokenFacts(
        seen_at=now, refreshed=True
    )
    log.info("token of %s refreshed%s", account,
             f"; valid until {new_facts.expires_at:%Y-%m-%d %H:%M} UTC"
             if new_facts.expires_at else "")
    return RefreshResult(new_facts, new_token=fresh.access_token)
