"""Planned messages in queue files: validated like posts (every problem named, nothing
half-imported), imported by `enqueue` and the inbox, sent by the daemon at their time (on
the warping clock); and the daemon's handling of actions planned by others (rules)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml

from scheduler.clock import FakeClock, to_aware
from scheduler.config import load_settings
from scheduler.emulator import RunningEmulator
from scheduler.inbox import scan_inbox
from scheduler.lifecycle import ActionMove
from scheduler.store import NewAction, Store
from tests.e2e.engagement_support import IG, PERSON, Cli, make_cli
from tests.kinds_support import run_daemon


@pytest.fixture
def cli(tmp_path: Path, db_url: str, emulator: RunningEmulator, monkeypatch: pytest.MonkeyPatch) -> Cli:
    return make_cli(tmp_path, db_url, emulator, monkeypatch)


def _at(hours: float) -> str:
    return (datetime.now(UTC) + timedelta(hours=hours)).replace(microsecond=0).isoformat()


def write_queue(tmp: Path, messages: list[dict[str, object]], name: str = "q.yaml", **top: object) -> Path:
    path = tmp / name
    path.write_text(yaml.safe_dump({"account": "shop", **top, "messages": messages}, sort_keys=False))
    return path


def test_a_scheduled_message_is_sent_by_the_daemon_at_its_time(cli: Cli, tmp_path: Path, clock: FakeClock) -> None:
    media = cli.media()
    comment = cli.emu.state.add_comment(media, "when?", "visitor", from_id=PERSON)
    at = _at(1)
    q = write_queue(tmp_path, [
        {"key": "launch-dm", "at": at, "to": PERSON, "text": "We are live!",
         "quick_replies": [{"title": "Shop", "payload": "SHOP"}]},
        {"key": "launch-pr", "at": at, "comment": comment, "text": "Here is your link"},
    ])
    code, out, err = cli.run("validate", str(q))
    assert code == 0 and "0 posts, 2 messages ok" in out, err
    code, out, err = cli.run("enqueue", str(q))
    assert code == 0 and "message    launch-dm (message at" in out and "2 messages planned" in out, err
    code, out, _ = cli.run("enqueue", str(q))  # a second import plans nothing
    assert code == 0 and "kept       launch-dm" in out
    rows = {r["key"]: r for r in cli.json("actions")}
    assert {k: r["state"] for k, r in rows.items()} == {"launch-dm": "pending", "launch-pr": "pending"}
    assert rows["launch-pr"]["kind"] == "private_reply" and rows["launch-dm"]["source"] == f"queue:{q}"
    assert cli.requests("messages") == []

    store = Store(cli.db_url, clock=clock)
    run_daemon(load_settings(cli.config), store, timeout_s=30, warp=clock)
    sent = cli.emu.state.sent_messages(IG)
    assert len(sent) == 2 and len(cli.requests("messages")) == 2
    due = datetime.fromisoformat(at)
    assert all(to_aware(datetime.fromtimestamp(m["sent_at"], UTC)) >= due for m in sent), (sent, due, [(a.key, a.sent_at, a.next_action_at) for a in Store(cli.db_url).list_actions()])
    bodies = [r["body"] for r in cli.requests("messages")]
    assert {"recipient": {"id": PERSON}, "message": {"text": "We are live!", "quick_replies": [
        {"content_type": "text", "title": "Shop", "payload": "SHOP"}]}} in bodies
    assert {"recipient": {"comment_id": comment}, "message": {"text": "Here is your link"}} in bodies
    done = {a.key: a for a in store.list_actions()}
    assert all(a.state == "done" and a.sent_at is not None and a.sent_at >= due.replace(tzinfo=None)
               for a in done.values())


def test_a_bad_messages_list_names_every_problem_and_imports_nothing(cli: Cli, tmp_path: Path) -> None:
    q = write_queue(tmp_path, [
        {"key": "ok", "at": _at(1), "to": PERSON, "text": "fine"},
        {"key": "bad-to", "at": _at(1), "to": "12ab", "text": "x"},
        {"key": "past", "at": _at(-2), "to": PERSON, "text": "x"},
        {"key": "noacct", "at": _at(1), "to": PERSON, "text": "x", "account": "nope"},
        {"key": "buttons", "at": _at(1), "to": PERSON, "text": "x",
         "buttons": [{"title": f"b{i}", "postback": "P"} for i in range(4)]},
        {"key": "typo", "at": _at(1), "to": PERSON, "txt": "x"},
        {"key": "ok", "at": _at(1), "to": PERSON, "text": "again"},
    ], posts=[{"key": "p1", "at": _at(1), "image": "https://cdn.example.com/a.jpg"}])
    code, _, err = cli.run("enqueue", str(q))
    assert code == 2, err
    for where in ("message 2 (key bad-to): field 'to': a recipient id (IGSID) must be made of digits only",
                  "message 3 (key past): field 'at':",
                  "message 4 (key noacct): field 'account': account 'nope' is not configured",
                  "message 5 (key buttons): field 'buttons': has 4 buttons",
                  "message 6 (key typo): field 'txt': unknown key 'txt' (did you mean 'text'?)",
                  "message 7 (key ok): field 'key': key 'ok' is already used by message 1"):
        assert f"{q}: {where}" in err, (where, err)
    assert cli.json("actions") == [] and cli.json("list") == []  # nothing half-imported


def test_the_inbox_imports_planned_messages(cli: Cli, tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    write_queue(inbox, [{"key": "inbox-dm", "at": _at(1), "to": PERSON, "text": "hi"}], name="m.yaml")
    settings = load_settings(cli.config).model_copy(update={"queue": load_settings(cli.config).queue.model_copy(
        update={"inbox_dir": inbox, "settle_s": 0})})
    store = Store(cli.db_url)
    store.sync_accounts(settings.accounts)
    scan_inbox(settings, store, "test")
    assert (inbox / "done" / "m.yaml").exists()
    [a] = store.list_actions()
    assert (a.key, a.state, a.kind, a.source) == ("inbox-dm", "pending", "message", f"queue:{inbox / 'm.yaml'}")


def test_rule_actions_run_in_order_by_the_daemon(cli: Cli, clock: FakeClock) -> None:
    """Actions planned by another part (rules insert them with the event) run in the daemon."""
    media = cli.media()
    comment = cli.emu.state.add_comment(media, "sale?", "visitor", from_id=PERSON)
    store = Store(cli.db_url, clock=clock)
    store.sync_accounts(load_settings(cli.config).accounts)
    planned = store.plan_actions([
        NewAction(key=f"rule:sale:1:{k}", account="shop", kind=k, target=comment, source="rule:sale",
                  payload={"text": t} if t else {})
        for k, t in (("reply", "Check your DMs"), ("private_reply", "SAVE20"), ("hide", None))
    ] + [NewAction(key="rule:thanks:2:message", account="shop", kind="message", target=PERSON,
                   source="rule:thanks", payload={"text": "Thanks for writing!"})], "test")
    assert [p.outcome for p in planned] == ["new", "new", "new", "new"]
    run_daemon(load_settings(cli.config), store, timeout_s=30, warp=clock)
    assert {a.key: a.state for a in store.list_actions()} == {
        "rule:sale:1:reply": "done", "rule:sale:1:private_reply": "done", "rule:sale:1:hide": "done",
        "rule:thanks:2:message": "done"}
    on_comment = [r for r in cli.emu.state.requests if r["method"] == "POST"
                  and (r["endpoint"] != "messages" or "comment_id" in r["body"]["recipient"])]
    assert [r["endpoint"] for r in on_comment] == ["replies", "messages", "comment"]
    assert {"recipient": {"id": PERSON}, "message": {"text": "Thanks for writing!"}} in [
        r["body"] for r in cli.requests("messages")]


def test_a_dm_whose_daemon_died_mid_send_becomes_unknown(cli: Cli, clock: FakeClock) -> None:
    """A lease that ran out while the call was out: the DM is never sent again by itself."""
    store = Store(cli.db_url, clock=clock)
    store.sync_accounts(load_settings(cli.config).accounts)
    store.plan_actions([NewAction(key="crash", account="shop", kind="message", target=PERSON,
                                  payload={"message": {"text": "hi"}}, source="test")], "test")
    [a] = store.claim_due_actions("dead-daemon", 5, 1)
    store.action_transition(a, ActionMove.BEGIN_SEND, "dead-daemon", release=False)
    clock.advance(6)
    run_daemon(load_settings(cli.config), store, timeout_s=30, warp=clock)
    after = store.action("crash")
    assert after is not None and after.state == "unknown" and "may have been delivered" in (after.reason or "")
    assert cli.requests("messages") == []
    with store.engine.connect() as c:
        moves = c.execute(sa.text("SELECT from_state, to_state FROM action_events ORDER BY id")).all()
    assert [tuple(m) for m in moves][-1] == ("sending", "unknown")
