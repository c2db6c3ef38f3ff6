"""Rate-limit headroom rules (README "Limits, retries and crash safety"): when to space out work and when to stop calling.

Pure: figures in, decisions out.
"""

from __future__ import annotations

from datetime import datetime, timedelta


def spacing_factor(usage_pct: float, soft_pct: float) -> float:
    """1 below the soft threshold, then up to 4× at 100 %: polls and staging wait longer,
    publishing due posts never does."""
    if usage_pct <= soft_pct or soft_pct >= 100:
        return 1.0
    return 1.0 + 3.0 * min(1.0, (usage_pct - soft_pct) / (100.0 - soft_pct))


def pause_until_from_usage(
    usage_pct: float, regain_s: float, now: datetime, fallback_s: float
) -> datetime | None:
    """At 100 % Meta may throttle at any call: stop until it says access is regained."""
    if usage_pct < 100:
        return None
    return now + timedelta(seconds=regain_s if regain_s > 0 else fallback_s)


def pause_until_from_error(regain_s: float, now: datetime, fallback_s: float) -> datetime:
    """After a throttling error: Meta's estimate when it gives one, else our backoff."""
    return now + timedelta(seconds=regain_s if regain_s > 0 else fallback_s)


def spaced_stage_at(
    due_at: datetime, lead_s: float, factor: float, processing_s: float, poll_min_s: float
) -> datetime:
    """When to create a post's containers while usage is above the soft threshold: the lead
    divided by the spacing factor, but never less than twice the expected processing time
    (plus one poll), so the post is still ready on time."""
    floor = min(lead_s, 2.0 * processing_s + poll_min_s)
    return due_at - timedelta(seconds=max(lead_s / max(factor, 1.0), floor))
