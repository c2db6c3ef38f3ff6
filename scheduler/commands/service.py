"""`igsched status` and `igsched tokens`: how the service is, for a person or a monitoring
check (README "Running it for months"). Exit 0 when healthy, 1 when a person is needed."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from scheduler.clikit import Ctx, handled
from scheduler.problems import plain
from scheduler.service.report import status_report, tokens_report
from scheduler.views import short_time


@click.command()
@click.option("--json", "as_json", is_flag=True, help="one JSON document (an object)")
@click.pass_obj
@handled
def status(obj: Ctx, as_json: bool) -> None:
    """Daemons and their last tick, posts by state, the next due post, paused accounts,
    accounts needing re-authorisation, token days left. Exit 1 when a person is needed."""
    settings = obj.settings()
    store = obj.store(upgrade=False)
    report = status_report(settings, store.status_figures(), store.quota_report())
    if as_json:
        click.echo(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        _print_status(report)
    sys.exit(0 if report["healthy"] else 1)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="one JSON document (a list of objects)")
@click.pass_obj
@handled
def tokens(obj: Ctx, as_json: bool) -> None:
    """Per account: where its token comes from, when it expires, days left; never the token."""
    settings = obj.settings()
    store = obj.store(upgrade=False)
    rows = tokens_report(settings, store.token_states(), store.now())
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        expiry = (f"expires {short_time(r['expires_at'])} UTC ({r['days_left']:.1f} days left)"
                  if r["expires_at"] else "expiry unknown" if r["login"] == "instagram"
                  else "does not expire (Facebook Login)")
        line = f"{r['account']}: {r['source']} token, {expiry}"
        if r["refreshed_at"]:
            line += f", refreshed {short_time(r['refreshed_at'])} UTC"
        if r["next_refresh_at"]:
            line += f", next refresh {short_time(r['next_refresh_at'])} UTC"
        if r["last_refresh_error"]:
            line += f" (last try: {r['last_refresh_error']})"
        click.echo(plain(line))


def _print_status(r: dict[str, Any]) -> None:
    click.echo("healthy" if r["healthy"] else "a person is needed:")
    for p in r["problems"]:
        click.echo(f"  - {plain(p)}")
    click.echo("daemons:" if r["daemons"] else "daemons: none has run on this database")
    for d in r["daemons"]:
        how = (f"running, last tick {d['seconds_since_tick']:.0f} s ago" if d["running"]
               else f"stopped {short_time(d['stopped_at'])} UTC")
        click.echo(f"  {d['identity']} (host {d['host']}, pid {d['pid']}): {how}")
    click.echo("posts: " + (", ".join(f"{k} {v}" for k, v in sorted(r["posts"].items())) or "none"))
    click.echo("actions: " + (", ".join(f"{k} {v}" for k, v in sorted(r["actions"].items())) or "none"))
    n = r["next_due"]
    click.echo(f"next due: {n['key']} ({n['account']}, {n['kind']}, {n['state']}) at "
               f"{short_time(n['at'])} UTC" if n else "next due: nothing planned")
    for p in r["paused_accounts"]:
        click.echo(f"paused: {p['account']} until {short_time(p['until'])} UTC: {plain(p['reason'])}")
    for a in r["needs_reauth"]:
        click.echo(f"needs re-authorisation: {a['account']}: {plain(a['reason'])}")
    for t in r["tokens"]:
        left = f"{t['days_left']:.1f} days left" if t["days_left"] is not None else "expiry unknown"
        click.echo(f"token {t['account']}: {t['source']}, {left}")
    if r["notifications"]:
        click.echo("notifications: " + ", ".join(f"{k} {v}" for k, v in sorted(r["notifications"].items())))
