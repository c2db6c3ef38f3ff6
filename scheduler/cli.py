"""Command line (README "Command line"). Commands only: parse, call, print. Exit 0 / 1 / 2."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from scheduler import __version__
from scheduler.clikit import ACTOR, Ctx, db_error_text, die, handled, problems_exit
from scheduler.clock import iso
from scheduler.commands import engagement
from scheduler.commands.service import status, tokens
from scheduler.commands.webhooks import events, webhooks
from scheduler.config import Settings, startup_problems
from scheduler.engage.actions import queued_message_action
from scheduler.lifecycle import ACTIVE, FINISHED
from scheduler.logformat import setup_logging
from scheduler.problems import InvalidInput, Problem, plain
from scheduler.store import (
    DatabaseUnreachable,
    PostNotFound,
    SchemaBehind,
    safe_url,
    upgrade_database,
)
from scheduler.views import detail_view, post_view, short_time


def _setup_logging(level: str, fmt: str = "text") -> None:
    setup_logging(level, fmt)  # every line through the redaction seam


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config", metavar="PATH", help="config.yaml (default: $IGSCHED_CONFIG, "
              "./config.yaml, /etc/igsched/config.yaml)")
@click.version_option(__version__, prog_name="igsched")
@click.pass_context
def main(ctx: click.Context, config: str | None) -> None:
    """igsched: publish planned Instagram posts on the second, never twice."""
    ctx.obj = Ctx(config)


@main.command()
@click.pass_obj
@handled
def run(obj: Ctx) -> None:
    """Run the daemon in the foreground (what systemd starts)."""
    from scheduler.daemon import Daemon

    settings = obj.settings()
    _setup_logging(settings.log_level, settings.log_format)
    # every line is cut of the configured secrets (remembered when the settings were loaded,
    # clikit.Ctx) and, once the daemon has read them, of the refreshed tokens
    for problem in startup_problems(settings):  # once, at start; affected posts wait
        logging.getLogger("igsched").warning("configuration: %s", problem)
    store = obj.store(upgrade=True)
    sys.exit(asyncio.run(Daemon(settings, store, service_gc=True).run()))


@main.command()
@click.option("--timeout", default=120.0, show_default=True, help="give up after this many seconds")
@handled
def demo(timeout: float) -> None:
    """A self-contained run: fake Graph API, temporary SQLite, the example queue."""
    from scheduler.demo import run_demo

    sys.exit(run_demo(timeout_s=timeout, out=click.echo))


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--fetch", is_flag=True, help="also fetch the media and check type, size, dimensions, duration")
@click.pass_obj
@handled
def validate(obj: Ctx, files: tuple[Path, ...], fetch: bool) -> None:
    """Check queue files; print every problem; exit 2 if any."""
    settings = obj.settings()
    specs, _messages, problems = _load_files(files, settings, report=True)
    if fetch and not problems:
        problems.extend(_fetch_checks(specs, settings))
    if problems:
        problems_exit(problems)


def _load_files(files: tuple[Path, ...], settings: Settings,
                report: bool) -> tuple[list[Any], list[Any], list[Problem]]:
    """Every file parsed (posts, planned messages), every problem collected (a bad file does
    not hide the next one's)."""
    from scheduler.queuefile import load_queue_document

    now = datetime.now(UTC)
    problems: list[Problem] = []
    specs: list[Any] = []
    messages: list[Any] = []
    labels: dict[int, str] = {}  # id(spec) → "post 2 (key spring)"
    for f in files:
        try:
            doc = load_queue_document(f, settings, now)
        except InvalidInput as e:
            problems.extend(e.problems)
            continue
        specs.extend(doc.posts)
        messages.extend(doc.messages)
        # a file that loaded has every entry as a spec, in order: its place names it
        labels.update({id(p): f"post {i} (key {p.key})" for i, p in enumerate(doc.posts, start=1)})
        labels.update({id(m): f"message {i} (key {m.key})" for i, m in enumerate(doc.messages, start=1)})
        if report:
            n, m = len(doc.posts), len(doc.messages)
            click.echo(f"{f}: {n} post{'s' if n != 1 else ''}" + (f", {m} message{'s' if m != 1 else ''}" if m else "")
                       + " ok")
    # one key in two files would make the second silently replace the first
    for items in (specs, messages):
        seen: dict[str, str] = {}
        for s in items:
            if s.key in seen and seen[s.key] != s.source_file:
                problems.append(Problem(s.source_file or "-", f"key {s.key} is also used in {seen[s.key]}",
                                        post=labels.get(id(s)), field="key"))
            seen.setdefault(s.key, s.source_file or "-")
    return specs, messages, problems


def _fetch_checks(specs: list[Any], settings: Settings) -> list[Problem]:
    from scheduler.pipeline.preflight import check_all, trusted_media_hosts

    out: list[Problem] = []
    for spec, result in check_all(specs, trusted_hosts=trusted_media_hosts(settings.graph.base_url)):
        label = f"post {spec.key}"
        for w in result.warnings:
            click.echo(f"{spec.source_file}: {label}: warning: {w}", err=True)
        out.extend(Problem(spec.source_file or "-", e, post=label) for e in result.errors)
    return out


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.pass_obj
@handled
def enqueue(obj: Ctx, files: tuple[Path, ...]) -> None:
    """Validate, then import atomically; print new / updated / unchanged."""
    settings = obj.settings()
    specs, messages, problems = _load_files(files, settings, report=False)
    if problems:
        problems_exit(problems)
    store = obj.store(upgrade=True)
    store.sync_accounts(settings.accounts)
    report = store.enqueue(specs, ACTOR, [queued_message_action(m) for m in messages], settings.skip_check())
    for key in report.new:
        click.echo(f"new        {key}")
    for key in report.updated:
        click.echo(f"updated    {key}")
    for key in report.unchanged:
        click.echo(f"unchanged  {key}")
    for key, why in report.kept:
        click.echo(f"kept       {key}: {why}")
    for planned in report.actions:
        a = planned.action
        if planned.outcome == "new":
            click.echo(f"message    {a.key} ({a.kind} at {short_time(iso(a.next_action_at))} UTC)")
        elif planned.outcome == "exists":
            click.echo(f"kept       {a.key}: a message with this key was planned before ({a.state}); never sent twice")
        else:
            click.echo(f"refused    {a.key}: {planned.reason}")
    click.echo(f"{len(report.new)} new, {len(report.updated)} updated, {len(report.unchanged)} unchanged"
               + (f", {len(report.kept)} kept" if report.kept else "")
               + (f"; {sum(1 for a in report.actions if a.outcome == 'new')} messages planned" if report.actions else ""))


def _print_posts(posts: list[dict[str, Any]], as_json: bool, finished: bool) -> None:
    if as_json:
        click.echo(json.dumps(posts, indent=2))
        return
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(box=None, header_style="bold")
    cols = ["key", "account", "kind", "scheduled (UTC)", "state"]
    cols += ["published (UTC)", "late s", "media id"] if finished else ["next action (UTC)"]
    cols.append("reason")
    for c in cols:
        table.add_column(c, overflow="fold")
    for p in posts:
        row = [p["key"], p["account"], p["kind"], short_time(p["at"]), p["state"]]
        if finished:
            late = p.get("lateness_s")
            row += [short_time(p.get("published_at")), f"{late:.3f}" if late is not None else "-", p.get("media_id") or "-"]
        else:
            row.append(short_time(p.get("next_action_at")))
        row.append(p.get("reason") or "")
        # as written, never as rich markup; a reason may quote a file's name or an API's answer
        table.add_row(*(Text(plain(v)) for v in row))
    Console(width=200).print(table)


@main.command(name="list")
@click.option("--state", "states", multiple=True, type=click.Choice(sorted(s.value for s in ACTIVE)),
              help="only posts in this state (repeatable)")
@click.option("--account", help="only this account")
@click.option("--json", "as_json", is_flag=True, help="one JSON document (a list of objects)")
@click.pass_obj
@handled
def list_(obj: Ctx, states: tuple[str, ...], account: str | None, as_json: bool) -> None:
    """Planned and in-flight posts."""
    store = obj.store(upgrade=False)
    posts = store.list_posts(list(states) or [s.value for s in ACTIVE], account)
    _print_posts([post_view(p) for p in posts], as_json, finished=False)


@main.command()
@click.option("--since", metavar="TIME", help="ISO 8601 time or date (UTC unless it has an offset)")
@click.option("--json", "as_json", is_flag=True, help="one JSON document (a list of objects)")
@click.pass_obj
@handled
def history(obj: Ctx, since: str | None, as_json: bool) -> None:
    """Finished posts (published, failed, cancelled), newest first."""
    since_dt = None
    if since:
        try:
            since_dt = datetime.fromisoformat(since)
        except ValueError:
            raise InvalidInput([Problem("--since", f"not an ISO 8601 time: {since!r}")]) from None
        if since_dt.tzinfo is not None:
            since_dt = since_dt.astimezone(UTC).replace(tzinfo=None)
    store = obj.store(upgrade=False)
    posts = store.list_posts([s.value for s in FINISHED], since=since_dt, newest_first=True)
    _print_posts([post_view(p) for p in posts], as_json, finished=True)


@main.command()
@click.argument("key")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
@click.pass_obj
@handled
def show(obj: Ctx, key: str, as_json: bool) -> None:
    """One post: its state, containers, every state change and API call."""
    store = obj.store(upgrade=False)
    p = store.get(key)
    if p is None:
        raise PostNotFound(key)
    d = detail_view(p, store.media(p.id), store.events(p.id), store.calls(p.id))
    if as_json:
        click.echo(json.dumps(d, indent=2))
        return
    # every stored text on one line, control characters escaped: a file's name, a caption's
    # source or an API's answer could otherwise print lines that look like ours
    for k in ("key", "account", "kind", "at", "state", "reason", "media_id", "permalink", "published_at",
              "lateness_s", "container_id", "source_file"):
        if d.get(k) is not None:
            click.echo(f"{k:14} {plain(d[k])}")
    if "first_comment" in d:
        click.echo(f"{'first_comment':14} {d['first_comment']['state']}"
                   + (f" ({plain(d['first_comment']['error'])})" if d["first_comment"]["error"] else ""))
    click.echo("media:")
    for m in d["media"]:
        click.echo(f"  [{m['position']}] {m['kind']:5} {plain(m['source'])}  container={m['container_id'] or '-'} "
                   f"status={m['status'] or '-'}" + (f" error={plain(m['error'])}" if m["error"] else ""))
    click.echo("events:")
    for e in d["events"]:
        click.echo(f"  {short_time(e['at'])}  {e['from'] or '-':>10} → {e['to']:<10} {plain(e['reason'] or '')}")
    click.echo("api calls:")
    for c in d["api_calls"]:
        click.echo(f"  {short_time(c['at'])}  {c['endpoint']:<40} {c['http_status'] or '-'} {c['outcome']}"
                   + (f" error {plain(c['error'])}" if c["error"] else "")
                   + (f" fbtrace {plain(c['fbtrace_id'])}" if c["fbtrace_id"] else ""))


@main.command()
@click.argument("key")
@click.pass_obj
@handled
def cancel(obj: Ctx, key: str) -> None:
    """Cancel a post that has not started publishing."""
    store = obj.store(upgrade=True)
    before = store.cancel(key, ACTOR)
    click.echo(f"cancelled {key} (was {before.state})")


@main.command()
@click.argument("key")
@click.pass_obj
@handled
def retry(obj: Ctx, key: str) -> None:
    """Plan a failed or cancelled post again; or try a waiting one now."""
    settings = obj.settings()
    store = obj.store(upgrade=True)
    before = store.retry(key, settings.staging.lead_s, ACTOR)
    click.echo(f"retrying {key} (was {before.state})")


@main.command()
@click.option("--json", "as_json", is_flag=True, help="one JSON document (a list of objects)")
@click.pass_obj
@handled
def quota(obj: Ctx, as_json: bool) -> None:
    """Per account: publishing quota used/total, usage-header figures, pause state."""
    store = obj.store(upgrade=False)
    store.sync_accounts(obj.settings().accounts)
    rows = store.quota_report()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(box=None, header_style="bold")
    for c in ("account", "quota", "app usage", "account usage", "state"):
        table.add_column(c, overflow="fold")
    for r in rows:
        total = r["quota_total"] if r["quota_total"] is not None else "?"
        state = "ok"
        if r["needs_reauth"]:
            state = f"needs re-authorisation: {r['reauth_reason']}"
        elif r["paused"]:
            state = f"paused until {short_time(r['paused_until'])} UTC: {r['pause_reason']}"
        cells = (r["account"], f"{r['quota_used']}/{total} in {r['quota_window_s'] // 3600} h",
                 _pct(r["usage_app_pct"]), _pct(r["usage_buc_pct"]), state)
        table.add_row(*(Text(plain(c)) for c in cells))  # reasons quote Meta's answers: never markup
    Console(width=200).print(table)


def _pct(value: int | None) -> str:
    return f"{value} %" if value is not None else "-"


@main.group()
def db() -> None:
    """Database schema."""


@db.command()
@click.pass_obj
@handled
def upgrade(obj: Ctx) -> None:
    """Apply pending migrations (run also does this at start)."""
    settings = obj.settings()
    try:
        upgrade_database(settings.database.url)
    except Exception as e:  # unknown scheme, missing driver, unreachable server, read-only file
        if isinstance(e, SchemaBehind | DatabaseUnreachable):
            raise
        raise DatabaseUnreachable(
            f"cannot upgrade {safe_url(settings.database.url)}: {db_error_text(e)}") from None
    click.echo(f"database {safe_url(settings.database.url)} is up to date")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8790, show_default=True, type=click.IntRange(0, 65535))
def emulator(host: str, port: int) -> None:
    """Serve the fake Graph API for trying things out."""
    from scheduler.emulator import serve

    _setup_logging("INFO")
    try:
        serve(host, port, on_ready=lambda url: click.echo(
            f"fake Graph API on {url} (set graph.base_url to this)", err=True))
    except OSError as e:  # the port taken, a host that is not this machine's
        die(f"cannot serve the fake Graph API on {host}:{port}: {e.strerror or e}", 1)


main.add_command(events)
main.add_command(webhooks)
main.add_command(engagement.comments)
main.add_command(engagement.message)
main.add_command(engagement.profile)
main.add_command(engagement.actions)
main.add_command(status)
main.add_command(tokens)
