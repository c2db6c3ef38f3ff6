"""What `igsched status` and `igsched tokens` show, built from what the store read. Pure: the
commands only print these (README "Running it for months")."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from scheduler.clock import iso
from scheduler.config import Settings
from scheduler.service.health import DaemonSeen, assess
from scheduler.service.tokens import (
    Flavour,
    TokenFacts,
    Verdict,
    flavour,
    plan_refresh,
    seconds_left,
)
from scheduler.store import DaemonRecord, TokenState


def _facts(t: TokenState) -> TokenFacts:
    return TokenFacts(seen_at=t.seen_at, expires_at=t.expires_at, refreshed=t.refreshed_at is not None,
                  failures=t.failures, last_attempt_at=t.last_attempt_at, not_before=t.not_before)


def tokens_report(settings: Settings, states: Sequence[TokenState], now: datetime) -> list[dict[str, Any]]:
    """Per configured account: `{account, source, expires_at, days_left, refreshed_at}` plus the
    login, the next refresh and the last refresh failure. Never the token."""
    kind = flavour(settings.graph.base_url, settings.graph.login)
    by_name = {s.account: s for s in states}
    out = []
    for acct in settings.accounts:
        t = by_name.get(acct.name)
        left = seconds_left(t.expires_at, now) if t is not None else None
        next_at = None
        if t is not None and kind is Flavour.INSTAGRAM_LOGIN:
            plan = plan_refresh(kind, _facts(t), now, settings.tokens.refresh_days_left)
            next_at = plan.at if plan.verdict in (Verdict.LATER, Verdict.REFRESH_NOW) else None
        out.append({
            "account": acct.name,
            "source": t.source if t is not None else "config",
            "expires_at": iso(t.expires_at) if t is not None else None,
            "days_left": round(left / 86400, 2) if left is not None else None,
            "refreshed_at": iso(t.refreshed_at) if t is not None else None,
            "login": "instagram" if kind is Flavour.INSTAGRAM_LOGIN else "facebook",
            "next_refresh_at": iso(next_at),
            "refresh_failures": t.failures if t is not None else 0,
            "last_refresh_error": t.last_error if t is not None else None,
        })
    return out


def _daemon_view(d: DaemonRecord, now: datetime) -> dict[str, Any]:
    return {
        "identity": d.identity, "host": d.host, "pid": d.pid,
        "started_at": iso(d.started_at), "last_tick_at": iso(d.last_tick_at),
        "seconds_since_tick": round((now - d.last_tick_at).total_seconds(), 1),
        "running": d.stopped_at is None, "stopped_at": iso(d.stopped_at),
    }


def status_report(settings: Settings, figures: dict[str, Any], quotas: list[dict[str, Any]]) -> dict[str, Any]:
    """The whole picture, and whether a person is needed (`healthy`, `problems`)."""
    now: datetime = figures["now"]
    configured = {a.name for a in settings.accounts}
    tokens = tokens_report(settings, figures["tokens"], now)
    daemons: list[DaemonRecord] = figures["daemons"]
    reauth = [(name, why) for name, why in figures["reauth"] if name in configured]
    health = assess(
        now,
        [DaemonSeen(d.identity, d.last_tick_at, stopped=d.stopped_at is not None) for d in daemons],
        [name for name, _ in reauth],
        {t["account"]: (t["days_left"] * 86400 if t["days_left"] is not None else None) for t in tokens},
        waiting_posts=int(figures["posts"].get("waiting", 0)),
    )
    nxt = figures["next_due"]
    return {
        "healthy": health.healthy,
        "problems": health.problems,
        "now": iso(now),
        "daemons": [_daemon_view(d, now) for d in daemons],
        "posts": figures["posts"],
        "actions": figures["actions"],
        "next_due": None if nxt is None else {
            "key": nxt["key"], "account": nxt["account"], "kind": nxt["kind"],
            "state": nxt["state"], "at": iso(nxt["due_at"]),
        },
        "paused_accounts": [
            {"account": q["account"], "until": q["paused_until"], "reason": q["pause_reason"]}
            for q in quotas if q["paused"] and q["account"] in configured
        ],
        "needs_reauth": [{"account": name, "reason": why} for name, why in reauth],
        "tokens": [{k: t[k] for k in ("account", "source", "expires_at", "days_left", "refreshed_at")}
                   for t in tokens],
        "notifications": figures["notifications"],
    }
