"""Engagement commands (README "Engagement"): `comments`, `message send`, `profile`,
`actions`. Each parses, calls `scheduler.engage.api.Engagement`, and prints.

Exit codes: 0 when the action is done (or waits: deferred, with its reason), 1 when it
failed or its answer was lost (`unknown`) or the API could not be asked, 2 for bad input
(nothing written, nothing sent).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Coroutine
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click

from scheduler.clikit import Ctx, die, handled
from scheduler.config import TokenMissing
from scheduler.engage.actions import action_view
from scheduler.engage.api import ActionResult, Engagement, OverBudget
from scheduler.engage.messagefile import load_message_file
from scheduler.engage.messages import message_from_flags
from scheduler.graph.engagement import MAX_COMMENTS_PAGE, PROFILE_FIELDS, CommentInfo
from scheduler.graph.errors import GraphError
from scheduler.lifecycle import ActionState
from scheduler.pipeline.runtime import Paused
from scheduler.problems import InvalidInput, Problem, plain
from scheduler.store import ActionNotFound

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])
FAILED = (ActionState.FAILED, ActionState.UNKNOWN)

_account = click.option("--account", metavar="A", help="the account (may be left out when one is configured)")
_json = click.option("--json", "as_json", is_flag=True, help="print one JSON document")
_key = click.option("--key", metavar="K", help="idempotency key: a key used before prints the earlier "
                    "action and sends nothing (default: a new key)")


def _run(obj: Ctx, work: Callable[[Engagement], Awaitable[T]]) -> T:
    """Open the engagement API on the configured database and run one operation."""
    settings = obj.settings()
    store = obj.store(upgrade=True)

    async def go() -> T:
        async with Engagement(settings, store) as eng:
            return await work(eng)

    try:
        return asyncio.run(go())
    finally:
        store.close()


def _errors(fn: F) -> F:
    """What the API may answer besides bad input, as one line and exit 1."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ActionNotFound as e:
            die(f"no action with key {e}", 2)
        except TokenMissing as e:
            die(str(e), 1)
        except Paused as p:
            die(f"no call made: {p.reason}; no calls before {p.until:%Y-%m-%d %H:%M:%S} UTC", 1)
        except OverBudget as e:
            die(f"no call made: {e.reason}", 1)
        except GraphError as e:
            die(str(e), 1)

    return wrapper  # type: ignore[return-value]


def _limit(limit: int | None, all_: bool) -> int | None:
    if limit is not None and all_:
        raise InvalidInput([Problem("command line", "give --limit N or --all, not both", field="--limit")])
    if all_:
        return None
    return MAX_COMMENTS_PAGE if limit is None else limit


def _print_comments(items: list[CommentInfo], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps([c.as_dict() for c in items], indent=2))
        return
    for c in items:
        extra = f"  ({c.replies_count} replies)" if c.replies_count else ""
        # a stranger's words, one line each, control characters escaped (no terminal tricks)
        click.echo(f"{plain(c.id)}  {plain(c.timestamp or '-')}  @{plain(c.username or '?')}  ♥{c.like_count or 0}{extra}  "
                   f"{plain(c.text or '')}")
    click.echo(f"{len(items)} comment{'s' if len(items) != 1 else ''}", err=True)


def _print_outcome(result: ActionResult, as_json: bool) -> None:
    a = result.action
    if result.earlier:
        click.echo(f"key {a.key} was used before: nothing sent; this is the earlier action", err=True)
    if as_json:
        click.echo(json.dumps(result.view(), indent=2))
    else:
        line = f"{a.kind} {a.key}: {a.state}"
        if a.result_id:
            line += f" ({a.result_id})"
        if a.reason:
            line += f" — {a.reason}"
        click.echo(plain(line))
    if a.state in FAILED:
        raise SystemExit(1)


def _act(obj: Ctx, as_json: bool, work: Callable[[Engagement], Coroutine[Any, Any, ActionResult]]) -> None:
    _print_outcome(_run(obj, work), as_json)


# --- comments ------------------------------------------------------------------------------


@click.group()
def comments() -> None:
    """Read, answer and moderate comments."""


@comments.command(name="list")
@click.argument("media_id")
@click.option("--limit", type=int, metavar="N", help=f"at most N comments (default {MAX_COMMENTS_PAGE})")
@click.option("--all", "all_", is_flag=True, help="every comment: follows the pages to the end")
@_account
@_json
@click.pass_obj
@handled
@_errors
def list_(obj: Ctx, media_id: str, limit: int | None, all_: bool, account: str | None, as_json: bool) -> None:
    """A media's top-level comments, newest first."""
    n = _limit(limit, all_)
    _print_comments(_run(obj, lambda eng: eng.comments(media_id, limit=n, account=account)), as_json)


@comments.command()
@click.argument("comment_id")
@click.option("--limit", type=int, metavar="N", help=f"at most N replies (default {MAX_COMMENTS_PAGE})")
@click.option("--all", "all_", is_flag=True, help="every reply: follows the pages to the end")
@_account
@_json
@click.pass_obj
@handled
@_errors
def replies(obj: Ctx, comment_id: str, limit: int | None, all_: bool, account: str | None, as_json: bool) -> None:
    """Replies to a comment, oldest first."""
    n = _limit(limit, all_)
    _print_comments(_run(obj, lambda eng: eng.replies(comment_id, limit=n, account=account)), as_json)


@comments.command()
@click.argument("comment_id")
@click.argument("text")
@_key
@_account
@_json
@click.pass_obj
@handled
@_errors
def reply(obj: Ctx, comment_id: str, text: str, key: str | None, account: str | None, as_json: bool) -> None:
    """A public reply to a comment (sent once; a lost answer is looked for before any retry)."""
    _act(obj, as_json, lambda eng: eng.reply(comment_id, text, key=key, account=account))


@comments.command(name="private-reply")
@click.argument("comment_id")
@click.argument("text")
@_key
@_account
@_json
@click.pass_obj
@handled
@_errors
def private_reply(obj: Ctx, comment_id: str, text: str, key: str | None, account: str | None,
                  as_json: bool) -> None:
    """A DM to the person who wrote a comment: once per comment, within 7 days of it."""
    _act(obj, as_json, lambda eng: eng.private_reply(comment_id, text, key=key, account=account))


def _moderation(name: str, doc: str) -> None:
    @comments.command(name=name, help=doc)
    @click.argument("comment_id")
    @_key
    @_account
    @_json
    @click.pass_obj
    @handled
    @_errors
    def command(obj: Ctx, comment_id: str, key: str | None, account: str | None, as_json: bool) -> None:
        _act(obj, as_json, lambda eng: getattr(eng, name)(comment_id, key=key, account=account))


_moderation("hide", "Hide a comment (others no longer see it).")
_moderation("unhide", "Show a hidden comment again.")
_moderation("delete", "Delete a comment.")


# --- messages ------------------------------------------------------------------------------


@click.group()
def message() -> None:
    """Direct messages."""


@message.command()
@click.option("--to", metavar="IGSID", help="the person (their Instagram-scoped id)")
@click.option("--text", metavar="T", help="a text message (at most 1,000 bytes)")
@click.option("--quick-reply", "quick_replies", multiple=True, metavar="TITLE=PAYLOAD",
              help="a quick reply under the text (repeatable, at most 13)")
@click.option("--image", metavar="URL", help="an image by https URL")
@click.option("--audio", metavar="URL", help="an audio file by https URL")
@click.option("--video", metavar="URL", help="a video by https URL")
@click.option("--share", metavar="MEDIA_ID", help="share one of the account's own posts")
@click.option("--reusable", is_flag=True, help="with --image/--audio/--video: let Meta reuse the attachment")
@click.option("--file", "file", type=click.Path(path_type=Path), metavar="MESSAGE.yaml",
              help="a message file: templates (buttons, cards), quick replies, attachments")
@_key
@_account
@_json
@click.pass_obj
@handled
@_errors
def send(obj: Ctx, to: str | None, text: str | None, quick_replies: tuple[str, ...], image: str | None,
         audio: str | None, video: str | None, share: str | None, reusable: bool, file: Path | None,
         key: str | None, account: str | None, as_json: bool) -> None:
    """Send a DM, once (a lost answer makes it `unknown`, never re-sent by itself)."""
    if file is not None:
        flags = [n for n, v in (("--text", text), ("--image", image), ("--audio", audio), ("--video", video),
                                ("--share", share), ("--quick-reply", quick_replies), ("--reusable", reusable)) if v]
        if flags:
            raise InvalidInput([Problem("command line", "the message is in --file; leave out " + ", ".join(flags),
                                        field=flags[0])])
        msg = load_message_file(file, obj.settings().queue.max_file_bytes, to=to)
    else:
        if to is None:
            raise InvalidInput([Problem("command line", "say who gets the message", field="--to")])
        msg = message_from_flags(to=to, text=text, quick_replies=quick_replies, image=image, audio=audio,
                                 video=video, reusable=reusable, share=share)
    _act(obj, as_json, lambda eng: eng.send(msg, key=key, account=account))


# --- profiles ------------------------------------------------------------------------------


@click.command()
@click.argument("igsid")
@click.option("--fields", metavar="F,…", default=",".join(PROFILE_FIELDS), show_default=True,
              help="the fields to ask for")
@click.option("--refresh", is_flag=True, help="ask Meta even when the cached profile is still fresh")
@_account
@_json
@click.pass_obj
@handled
@_errors
def profile(obj: Ctx, igsid: str, fields: str, refresh: bool, account: str | None, as_json: bool) -> None:
    """A person's profile (cached for engagement.profile_ttl_s)."""
    wanted = [f.strip() for f in fields.split(",") if f.strip()]
    found = _run(obj, lambda eng: eng.profile(igsid, fields=wanted, refresh=refresh, account=account))
    if as_json:
        click.echo(json.dumps(found, indent=2))
        return
    for k, v in found.items():
        click.echo(f"{k:14} {plain(v) if v is not None else '-'}")


# --- actions -------------------------------------------------------------------------------


@click.group(invoke_without_command=True)
@click.option("--state", type=click.Choice([s.value for s in ActionState]), help="only actions in this state")
@click.option("--account", metavar="A", help="only this account")
@_json
@click.pass_context
@handled
@_errors
def actions(ctx: click.Context, state: str | None, account: str | None, as_json: bool) -> None:
    """Outbound actions (DMs, replies, moderation) and their outcomes, newest first;
    `actions retry KEY` sends a failed or unknown one again."""
    if ctx.invoked_subcommand is not None:
        return
    obj: Ctx = ctx.obj
    rows = [action_view(a) for a in _run(obj, lambda eng: eng.actions(state, account))]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        click.echo(plain(f"{r['created_at']}  {r['key']}  {r['account']}  {r['kind']} → {r['target']}  {r['state']}"
                         + (f"  {r['result_id']}" if r["result_id"] else "")
                         + (f"  — {r['reason']}" if r["reason"] else "")))
    click.echo(f"{len(rows)} action{'s' if len(rows) != 1 else ''}", err=True)


@actions.command(name="retry")
@click.argument("key")
@_json
@click.pass_obj
@handled
@_errors
def retry_action(obj: Ctx, key: str, as_json: bool) -> None:
    """Send a failed or unknown action again, on your word (a DM whose answer was lost may
    arrive twice); try a deferred one now."""
    _act(obj, as_json, lambda eng: eng.retry(key))


__all__ = ["actions", "comments", "message", "profile"]
