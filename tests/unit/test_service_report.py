"""What `status` and `tokens` show, from what the store read (pure)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from scheduler.config import settings_from_dict
from scheduler.service.report import status_report, tokens_report
from scheduler.store import DaemonRecord, TokenState

NOW = datetime(2026, 6, 1, 12, 0)
ACCOUNTS = [{"name": "shop", "ig_user_id": "1", "token_env": "X"},
            {"name": "studio", "ig_user_id": "2", "token_env": "Y"}]


def _settings(base_url: str = "https://graph.instagram.com") -> Any:
    return settings_from_dict({"graph": {"base_url": base_url}, "accounts": ACCOUNTS}, "test")


def _token(account: str, expires_in_days: float | None, refreshed: bool = True) -> TokenState:
    return TokenState(
        account=account, source="refreshed" if refreshed else "config", seeded_fingerprint="f" * 64,
        seen_at=NOW - timedelta(days=5), refreshed_token="ciphertext" if refreshed else None,
        expires_at=None if expires_in_days is None else NOW + timedelta(days=expires_in_days),
        refreshed_at=NOW - timedelta(days=5) if refreshed else None, last_attempt_at=None, failures=0,
        not_before=None, last_error=None, lease_owner=None, lease_until=None, version=3, updated_at=NOW,
    )


def _figures(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"now": NOW, "posts": {"published": 3}, "actions": {"done": 2}, "next_due": None,
                            "reauth": [], "daemons": [], "tokens": [], "notifications": {}}
    return {**base, **kw}


def test_tokens_show_source_expiry_and_the_next_refresh_never_the_token() -> None:
    rows = tokens_report(_settings(), [_token("shop", 55)], NOW)
    shop, studio = rows
    assert shop["source"] == "refreshed" and shop["days_left"] == 55 and shop["login"] == "instagram"
    assert shop["next_refresh_at"] == (NOW + timedelta(days=25)).isoformat() + "+00:00"  # at 30 days left
    assert studio == {"account": "studio", "source": "config", "expires_at": None, "days_left": None,
                      "refreshed_at": None, "login": "instagram", "next_refresh_at": None,
                      "refresh_failures": 0, "last_refresh_error": None}
    assert "ciphertext" not in repr(rows)
    facebook = tokens_report(_settings("https://graph.facebook.com"), [], NOW)
    assert {r["login"] for r in facebook} == {"facebook"}


def test_status_is_healthy_until_a_person_is_needed() -> None:
    ticking = DaemonRecord("a", "h", 1, NOW - timedelta(hours=1), NOW - timedelta(seconds=5), None)
    stopped = DaemonRecord("b", "h", 2, NOW - timedelta(days=1), NOW - timedelta(hours=3), NOW - timedelta(hours=3))
    ok = status_report(_settings(), _figures(daemons=[ticking, stopped], tokens=[_token("shop", 40)]), [])
    assert ok["healthy"] and ok["problems"] == [] and ok["actions"] == {"done": 2}
    assert [d["running"] for d in ok["daemons"]] == [True, False]
    stuck = DaemonRecord("a", "h", 1, NOW - timedelta(hours=1), NOW - timedelta(seconds=90), None)
    bad = status_report(_settings(), _figures(
        daemons=[stuck], tokens=[_token("shop", 2)], reauth=[("studio", "190"), ("gone", "not configured")],
        actions={"failed": 1}), [{"account": "shop", "paused": True, "paused_until": "x", "pause_reason": "80002"}])
    assert not bad["healthy"] and len(bad["problems"]) == 3
    # the daemon could not read a token (tokens unset here too: status reads what the daemon
    # recorded, never the tokens of its own environment)
    waiting = _figures(daemons=[ticking], tokens=[_token("shop", 40)])
    waiting["posts"] = {"waiting": 2, "planned": 1}
    gone = status_report(_settings(), waiting, [])
    assert not gone["healthy"]
    assert gone["problems"] == ["2 posts waiting for their account (a token that cannot be read, an account "
                                "not configured or needing re-authorisation): `igsched list --state waiting` says why"]
    assert bad["needs_reauth"] == [{"account": "studio", "reason": "190"}]
    assert bad["paused_accounts"] == [{"account": "shop", "until": "x", "reason": "80002"}]
    assert bad["actions"] == {"failed": 1}
