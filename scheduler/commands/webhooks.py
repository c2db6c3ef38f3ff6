"""`igsched events`, `igsched webhooks subscribe`, `igsched webhooks send-test` (README
"Webhooks and rules"). Parse, call, print."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import click
import httpx

from scheduler.clikit import Ctx, die, handled
from scheduler.clock import iso
from scheduler.config import AccountSettings, SecretMissing, Settings, TokenMissing
from scheduler.engage.events import EVENT_KINDS
from scheduler.engage.webhook_auth import SIGNATURE_HEADER, sign
from scheduler.graph.client import CallRecord, GraphClient
from scheduler.graph.errors import GraphError, GraphUnavailable
from scheduler.problems import InvalidInput, Problem, plain
from scheduler.redaction import remember_secret
from scheduler.store import EventRecord, Store
from scheduler.views import short_time

# Meta's webhook fields for each kind of event igsched stores (quick replies come as messages)
FIELDS_BY_KIND: dict[str, tuple[str, ...]] = {
    "comment": ("comments", "live_comments"),
    "mention": ("mentions",),
    "message": ("messages",),
    "quick_reply": ("messages",),
    "postback": ("messaging_postbacks",),
    "optin": ("messaging_optins",),
}
TEST_SENDER = "igsched-send-test"


def event_view(e: EventRecord) -> dict[str, Any]:
    """One event as `igsched events --json` prints it."""
    return {
        "id": e.id,
        "account": e.account if e.account is not None else e.ig_account_id,
        "kind": e.kind,
        "sender_id": e.sender_id,
        "text": e.text,
        "payload": e.payload,
        "media_id": e.media_id,
        "comment_id": e.comment_id,
        "timestamp": iso(e.occurred_at),
        "received_at": iso(e.received_at),
        "handled_at": iso(e.handled_at),
        "ig_account_id": e.ig_account_id,
        "recipient_id": e.recipient_id,
        "username": e.username,
        "is_echo": e.is_echo,
        "rule_actions": e.rule_actions,
    }


def subscription_fields(settings: Settings) -> list[str]:
    """The webhook fields to subscribe: every kind when events are forwarded or no rule is
    configured (everything is stored and listed), else the kinds the rules act on."""
    kinds: Sequence[str] = EVENT_KINDS
    if settings.rules and not settings.webhooks.forward:
        kinds = sorted({r.on for r in settings.rules})
    fields: list[str] = []
    for kind in kinds:
        fields.extend(f for f in FIELDS_BY_KIND[kind] if f not in fields)
    return sorted(fields)


def _since(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput([Problem("--since", f"not an ISO 8601 time: {value!r}")]) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _account_filter(settings: Settings, account: str | None) -> str | None:
    if account is None or account.isdigit() or settings.account(account) is not None:
        return account
    names = ", ".join(a.name for a in settings.accounts) or "none"
    raise InvalidInput([Problem("--account", f"no account named {account!r} (configured: {names}; "
                                             "or give an ig account id)")])


@click.command()
@click.option("--since", metavar="TIME", help="received at or after this ISO 8601 time (UTC unless it has an offset)")
@click.option("--kind", type=click.Choice(EVENT_KINDS), help="only events of this kind")
@click.option("--account", metavar="A", help="only this account (a configured name or an ig account id)")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(min=0),
              help="the newest N events (0: all)")
@click.option("--json", "as_json", is_flag=True, help="one JSON document (a list of objects)")
@click.pass_obj
@handled
def events(obj: Ctx, since: str | None, kind: str | None, account: str | None, limit: int,
           as_json: bool) -> None:
    """Stored webhook events, newest first."""
    settings = obj.settings()
    account = _account_filter(settings, account)
    store = obj.store(upgrade=False)
    rows = [event_view(e) for e in store.webhook_events(_since(since), kind, account, limit or None)]
    if as_json:
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    for r in rows:
        said = " | ".join(str(v) for v in (r["text"], r["payload"]) if v)
        handled_at = short_time(r["handled_at"])
        if r["handled_at"] and r["rule_actions"]:
            handled_at += f" ({r['rule_actions']} action{'s' if r['rule_actions'] != 1 else ''})"
        kind = r["kind"] + (" (echo)" if r["is_echo"] else "")
        click.echo(f"{r['id']:>6}  {short_time(r['received_at'])}  {r['account']:<12} {kind:<14} "
                   f"from {plain(r['sender_id'] or '-'):<18} handled {handled_at:<28} {plain(said[:100])}")


@click.group()
def webhooks() -> None:
    """The webhook receiver: subscribe accounts, send a test event."""


@webhooks.command()
@click.option("--account", metavar="A", help="only this account (default: every configured account)")
@click.pass_obj
@handled
def subscribe(obj: Ctx, account: str | None) -> None:
    """Ask Meta to send the accounts' events (comments, messages, …) to the app's callback URL."""
    settings = obj.settings()
    accounts = settings.accounts
    if account is not None:
        one = settings.account(account)
        if one is None:
            raise InvalidInput([Problem("--account", f"no account named {account!r}")])
        accounts = [one]
    if not accounts:
        raise InvalidInput([Problem("configuration", "no accounts are configured (accounts:)")])
    fields = subscription_fields(settings)
    store = obj.store(upgrade=True)
    store.sync_accounts(settings.accounts)
    results = asyncio.run(_subscribe_all(settings, store, accounts, fields))
    failed = 0
    for name, error in results:
        if error is None:
            click.echo(f"{name}: subscribed to {', '.join(fields)}")
        else:
            failed += 1
            click.echo(f"{name}: not subscribed: {plain(error)}", err=True)
    if failed:
        die(f"{failed} of {len(results)} account(s) not subscribed", 1)


async def _subscribe_all(settings: Settings, store: Store, accounts: Sequence[AccountSettings],
                         fields: Sequence[str]) -> list[tuple[str, str | None]]:
    calls: list[CallRecord] = []
    out: list[tuple[str, str | None]] = []
    async with GraphClient.from_settings(settings.graph, on_call=calls.append) as graph:
        for acct in accounts:
            try:
                ok = await graph.subscribe_app(acct.ig_user_id, acct.token(), fields)
                out.append((acct.name, None if ok else "Meta answered success: false"))
            except TokenMissing as e:
                out.append((acct.name, str(e)))
            except (GraphError, GraphUnavailable) as e:
                out.append((acct.name, str(e)))
    # the calls join the history like the daemon's (README "Database")
    await asyncio.to_thread(store.record_activity, calls, {}, [], [])
    return out


def sample_body(ig_account_id: str, now: datetime) -> bytes:
    """A notification as Meta would send it: one message echo (the account's own message),
    so it is stored and forwarded but no rule acts on it."""
    ms = int(now.timestamp() * 1000)
    item = {
        "sender": {"id": ig_account_id}, "recipient": {"id": TEST_SENDER}, "timestamp": ms,
        "message": {"mid": f"igsched-test-{uuid.uuid4().hex}", "is_echo": True,
                    "text": f"igsched send-test at {now.isoformat(timespec='seconds')}"},
    }
    body = {"object": "instagram", "entry": [{"id": ig_account_id, "time": ms, "messaging": [item]}]}
    return json.dumps(body, separators=(",", ":")).encode()


@webhooks.command(name="send-test")
@click.option("--account", metavar="A", help="the account the event is for (default: the first configured)")
@click.option("--url", metavar="URL", help="where to post (default: the local receiver, http://<webhooks.listen><path>); "
              "give the public https URL to check the TLS proxy too")
@click.pass_obj
@handled
def send_test(obj: Ctx, account: str | None, url: str | None) -> None:
    """Post a signed sample event to the receiver and check that it was stored."""
    settings = obj.settings()
    hooks = settings.webhooks
    listen = hooks.listen_address()
    if url is None:
        if listen is None:
            raise InvalidInput([Problem("configuration", "webhooks.listen is not set; the daemon "
                                        "serves no receiver (or give --url)")])
        host, port = listen
        host = "127.0.0.1" if host in ("0.0.0.0", "") else ("::1" if host == "::" else host)
        url = f"http://{f'[{host}]' if ':' in host else host}:{port}{hooks.path}"
    acct = settings.account(account) if account else (settings.accounts[0] if settings.accounts else None)
    if acct is None:
        raise InvalidInput([Problem("--account", f"no account named {account!r}" if account
                                    else "no accounts are configured (accounts:)")])
    try:
        secret = hooks.app_secret()
    except SecretMissing as e:
        raise InvalidInput([Problem("webhooks", str(e))]) from None
    remember_secret(secret)
    raw = sample_body(acct.ig_user_id, datetime.now(UTC))
    try:
        resp = httpx.post(url, content=raw, timeout=10.0, headers={
            "Content-Type": "application/json", SIGNATURE_HEADER: sign(secret, raw)})
    except httpx.HTTPError as e:
        die(f"no answer from {url} ({type(e).__name__}); is `igsched run` running with "
            "webhooks.listen set?", 1)
    if resp.status_code != 200:
        hint = " (the app secret differs from the receiver's)" if resp.status_code == 403 else ""
        die(f"the receiver at {url} answered {resp.status_code}{hint}", 1)
    key = json.loads(raw)["entry"][0]["messaging"][0]["message"]["mid"]
    store = obj.store(upgrade=False)
    found = next((e for e in store.webhook_events(kind="message", account=acct.ig_user_id, limit=50)
                  if e.dedup_key.endswith(key)), None)
    if found is None:
        die(f"the receiver at {url} answered 200, but the event is not in the database "
            "of this configuration (does the daemon use another database?)", 1)
    forwarded = len(store.deliveries(found.id))
    click.echo(f"sent to {url}: answered 200, stored as event {found.id}"
               + (f", queued for {forwarded} forwarding target(s)" if forwarded else ""))
