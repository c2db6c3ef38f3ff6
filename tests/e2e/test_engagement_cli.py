"""Engagement commands over real HTTP to the emulator, on SQLite and PostgreSQL: every command
with the exact request it sends, every limit refused before any call, each write sent once,
lost answers by kind, budgets that defer, Meta's refusals, and the profile cache."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml

from scheduler.emulator import RunningEmulator
from scheduler.engage.events import normalise, parse_body
from scheduler.store import Store
from tests.e2e.engagement_support import IG, PERSON, Cli, make_cli


@pytest.fixture
def cli(tmp_path: Path, db_url: str, emulator: RunningEmulator, monkeypatch: pytest.MonkeyPatch) -> Cli:
    return make_cli(tmp_path, db_url, emulator, monkeypatch)


def actions_rows(c: Cli) -> list[dict[str, object]]:
    return c.json("actions")  # type: ignore[no-any-return]


# --------------------------------------------------------------------------- messages


def test_message_send_text_with_quick_replies(cli: Cli) -> None:
    out = cli.json("message", "send", "--to", PERSON, "--text", "Favourite colour?",
                   "--quick-reply", "Red=COLOR_RED", "--quick-reply", "Blue=COLOR_BLUE", "--key", "q1")
    [req] = cli.requests("messages")
    assert req["path"].endswith("/me/messages") and req["account"] == IG
    assert req["body"] == {"recipient": {"id": PERSON}, "message": {"text": "Favourite colour?", "quick_replies": [
        {"content_type": "text", "title": "Red", "payload": "COLOR_RED"},
        {"content_type": "text", "title": "Blue", "payload": "COLOR_BLUE"}]}}
    sent = cli.emu.state.sent_messages(IG)[0]
    assert out == {"key": "q1", "state": "done", "recipient_id": PERSON, "message_id": sent["message_id"],
                   "reason": None}
    [row] = actions_rows(cli)
    assert {k: row[k] for k in ("key", "account", "kind", "target", "state", "result_id", "error", "source")} == {
        "key": "q1", "account": "shop", "kind": "message", "target": PERSON, "state": "done",
        "result_id": sent["message_id"], "error": None, "source": "cli"}
    assert row["created_at"] and row["done_at"]
    with Store(cli.db_url, upgrade=False).engine.connect() as c:  # the call is in the history, with usage
        calls = c.execute(sa.text("SELECT endpoint, outcome, buc_call_count FROM api_calls")).all()
    assert [(e, o) for e, o, _ in calls] == [("POST /me/messages", "ok")] and calls[0][2] is not None


@pytest.mark.parametrize("kind", ["image", "audio", "video"])
def test_message_send_attachment_reusable(cli: Cli, kind: str) -> None:
    url = f"https://cdn.example.com/f.{kind}"
    out = cli.json("message", "send", "--to", PERSON, f"--{kind}", url, "--reusable")
    assert out["state"] == "done"
    assert cli.requests("messages")[0]["body"] == {
        "recipient": {"id": PERSON},
        "message": {"attachment": {"type": kind, "payload": {"url": url, "is_reusable": True}}}}


def test_message_send_button_template_from_a_file(cli: Cli, tmp_path: Path) -> None:
    f = tmp_path / "buttons.yaml"
    f.write_text(yaml.safe_dump({"text": "How can we help?", "buttons": [
        {"title": "Visit Shop", "url": "https://shop.example.com"},
        {"title": "Contact Support", "postback": "CONTACT_SUPPORT"}]}))
    out = cli.json("message", "send", "--to", PERSON, "--file", str(f), "--key", "b1")
    assert out["state"] == "done" and out["message_id"]
    assert cli.requests("messages")[0]["body"] == {"recipient": {"id": PERSON}, "message": {"attachment": {
        "type": "template", "payload": {"template_type": "button", "text": "How can we help?", "buttons": [
            {"type": "web_url", "url": "https://shop.example.com", "title": "Visit Shop"},
            {"type": "postback", "title": "Contact Support", "payload": "CONTACT_SUPPORT"}]}}}}


def test_message_send_generic_template_from_a_file(cli: Cli, tmp_path: Path) -> None:
    f = tmp_path / "cards.yaml"
    f.write_text(yaml.safe_dump({"to": PERSON, "cards": [{
        "title": "Summer Collection", "subtitle": "New arrivals", "image": "https://example.com/summer.jpg",
        "url": "https://shop.example.com/summer",
        "buttons": [{"title": "Shop Now", "url": "https://shop.example.com/summer"}]}]}))
    assert cli.json("message", "send", "--file", str(f))["state"] == "done"
    assert cli.requests("messages")[0]["body"] == {"recipient": {"id": PERSON}, "message": {"attachment": {
        "type": "template", "payload": {"template_type": "generic", "elements": [{
            "title": "Summer Collection", "subtitle": "New arrivals", "image_url": "https://example.com/summer.jpg",
            "default_action": {"type": "web_url", "url": "https://shop.example.com/summer"},
            "buttons": [{"type": "web_url", "url": "https://shop.example.com/summer", "title": "Shop Now"}]}]}}}}


def test_the_same_key_twice_sends_once(cli: Cli) -> None:
    first = cli.json("message", "send", "--to", PERSON, "--text", "hello", "--key", "once")
    code, out, err = cli.run("message", "send", "--to", PERSON, "--text", "hello again", "--key", "once", "--json")
    assert code == 0 and "was used before: nothing sent" in err
    assert yaml.safe_load(out) == {**first, "earlier": True}
    assert len(cli.requests("messages")) == 1 and len(cli.emu.state.sent_messages()) == 1


# --------------------------------------------------------------------------- bad input: no call


def _file(tmp: Path, data: object) -> str:
    f = tmp / "m.yaml"
    f.write_text(yaml.safe_dump(data))
    return str(f)


BAD = [
    (["message", "send", "--to", PERSON, "--text", "é" * 501], "text", "1,002 bytes in UTF-8; the limit is 1,000"),
    (["message", "send", "--to", "12ab", "--text", "hi"], "to", "digits only"),
    (["message", "send", "--text", "hi"], "--to", "say who gets the message"),
    (["message", "send", "--to", PERSON, "--image", "http://cdn.example.com/a.jpg"], "image", "only https URLs"),
    (["message", "send", "--to", PERSON, "--text", "pick", *[f"--quick-reply=q{i}=P{i}" for i in range(14)]],
     "quick_replies", "has 14 replies; a message takes 1-13"),
    (["message", "send", "--to", PERSON, "--text", "pick", "--quick-reply", "A title longer than twenty=P"],
     "quick_replies[0].title", "the limit is 20"),
    (["message", "send", "--to", PERSON, "--text", "x", "--image", "https://cdn.example.com/a.jpg"], "text",
     "does not go with 'image'"),
    (["comments", "reply", "17x", "hi"], "COMMENT_ID", "digits only"),
    (["comments", "reply", "178", " "], "TEXT", "must not be empty"),
    (["comments", "private-reply", "178", "x" * 1001], "text", "the limit is 1,000 bytes"),
    (["comments", "hide", "abc"], "COMMENT_ID", "digits only"),
    (["comments", "list", "178", "--limit", "0"], "--limit", "at least 1"),
    (["comments", "list", "178", "--limit", "5", "--all"], "--limit", "not both"),
    (["profile", "12a"], "IGSID", "digits only"),
    (["profile", PERSON, "--fields", "name,Bad-Field"], "--fields", "not a field name"),
    (["message", "send", "--to", PERSON, "--text", "hi", "--account", "nope"], "--account", "not configured"),
    (["message", "send", "--to", PERSON, "--text", "hi", "--key", "has space"], "--key", "letters, digits"),
]


@pytest.mark.parametrize(("args", "field", "rule"), BAD, ids=[f"{i}-{b[1]}" for i, b in enumerate(BAD)])
def test_bad_input_is_refused_before_any_call(cli: Cli, args: list[str], field: str, rule: str) -> None:
    code, _, err = cli.run(*args)
    assert code == 2, err
    assert f"field '{field}'" in err and rule in err, err
    assert cli.emu.state.requests == []  # no call at all
    assert actions_rows(cli) == []  # nothing written


BAD_FILES = [
    ({"to": PERSON, "text": "t", "buttons": [{"title": f"b{i}", "postback": "P"} for i in range(4)]},
     "buttons", "has 4 buttons; a message takes 1-3"),
    ({"to": PERSON, "text": "x" * 641, "buttons": [{"title": "b", "postback": "P"}]}, "text", "the limit is 640"),
    ({"to": PERSON, "cards": [{"title": f"c{i}"} for i in range(11)]}, "cards", "has 11 cards"),
    ({"to": PERSON, "cards": [{"title": "t" * 81}]}, "cards[0].title", "the limit is 80"),
    ({"to": PERSON, "cards": [{"title": "t", "buttons": [{"title": "b", "url": "https://x.example.com"}] * 4}]},
     "cards[0].buttons", "has 4 buttons"),
    ({"to": PERSON, "text": "hi", "colour": "red"}, "colour", "unknown key"),
    ({"to": "999", "text": "hi"}, "to", "but --to says"),
]


@pytest.mark.parametrize(("data", "field", "rule"), BAD_FILES, ids=[b[1] for b in BAD_FILES])
def test_bad_message_file_is_refused_before_any_call(cli: Cli, tmp_path: Path, data: object, field: str,
                                                     rule: str) -> None:
    code, _, err = cli.run("message", "send", "--to", PERSON, "--file", _file(tmp_path, data))
    assert code == 2 and f"field '{field}'" in err and rule in err, err
    assert cli.emu.state.requests == [] and actions_rows(cli) == []


# --------------------------------------------------------------------------- comments


def test_comments_list_all_and_limit(cli: Cli) -> None:
    media = cli.media()
    cli.emu.state.add_comments(media, 120)
    every = cli.json("comments", "list", media, "--all")
    assert len(every) == 120 and len({c["id"] for c in every}) == 120
    assert set(every[0]) == {"id", "text", "username", "timestamp", "like_count", "replies_count"}
    pages = [r for r in cli.requests("comments", "GET")]
    assert len(pages) == 3 and pages[0]["params"]["limit"] == "50" and "after" in pages[1]["params"]
    seven = cli.json("comments", "list", media, "--limit", "7")
    assert len(seven) == 7 and cli.requests("comments", "GET")[-1]["params"]["limit"] == "7"


def test_comments_replies_reply_and_moderation(cli: Cli) -> None:
    media = cli.media()
    top = cli.emu.state.add_comment(media, "nice!", "visitor")
    cli.emu.state.add_comment(media, "agreed", "other", parent_id=top)
    replies = cli.json("comments", "replies", top)
    assert [r["text"] for r in replies] == ["agreed"]
    assert set(replies[0]) == {"id", "text", "username", "timestamp", "like_count"}

    out = cli.json("comments", "reply", top, "Thank you!", "--key", "r1")
    [req] = cli.requests("replies", "POST")
    assert req["params"] == {"message": "Thank you!"}
    assert out["key"] == "r1" and out["state"] == "done" and out["id"]
    assert any(c["id"] == out["id"] for c in cli.emu.state.comments(media))

    for verb, hidden in (("hide", True), ("unhide", False)):
        res = cli.json("comments", verb, top)
        assert res["state"] == "done" and res["success"] is True and set(res) >= {"key", "state", "success"}
        assert cli.requests("comment", "POST")[-1]["params"] == {"hide": "true" if hidden else "false"}
        assert next(c for c in cli.emu.state.comments(media) if c["id"] == top)["hidden"] is hidden
    res = cli.json("comments", "delete", top, "--key", "del-1")
    assert res == {"key": "del-1", "state": "done", "success": True, "reason": None}
    assert cli.requests("comment", "DELETE")[-1]["params"] == {}
    assert all(c["id"] != top for c in cli.emu.state.comments(media))


def test_private_reply_once_per_comment(cli: Cli) -> None:
    media = cli.media()
    comment = cli.emu.state.add_comment(media, "price?", "visitor", from_id=PERSON)
    out = cli.json("comments", "private-reply", comment, "Sent you the price!", "--key", "pr1")
    [req] = cli.requests("messages")
    assert req["body"] == {"recipient": {"comment_id": comment}, "message": {"text": "Sent you the price!"}}
    assert out["state"] == "done" and out["message_id"] and out["recipient_id"] == PERSON
    # the same key: the earlier action; another key: refused, naming the first, nothing sent
    code, _, err = cli.run("comments", "private-reply", comment, "again", "--key", "pr1")
    assert code == 0 and "used before" in err
    code, _, err = cli.run("comments", "private-reply", comment, "again", "--key", "pr2")
    assert code == 2 and "already has a private reply (action pr1, done)" in err and "COMMENT_ID" in err
    assert len(cli.requests("messages")) == 1
    assert [r["key"] for r in actions_rows(cli)] == ["pr1"]


def test_private_reply_to_a_comment_older_than_7_days_is_not_sent(cli: Cli, clock) -> None:  # type: ignore[no-untyped-def]
    media = cli.media()
    clock.advance(-8 * 86400)
    comment = cli.emu.state.add_comment(media, "old", "visitor", from_id=PERSON)
    clock.advance(8 * 86400)
    code, _, err = cli.run("comments", "private-reply", comment, "too late")
    assert code == 2 and "8.0 days old; a private reply must follow within 7 days" in err
    assert [r["endpoint"] for r in cli.emu.state.requests] == ["comment"]  # the comment's time was read, no send
    assert actions_rows(cli) == []


# --------------------------------------------------------------------------- lost answers


def test_a_dm_whose_answer_is_lost_is_unknown_and_not_sent_twice(cli: Cli) -> None:
    cli.emu.state.inject_fault("messages", "drop_after")
    code, out, _ = cli.run("message", "send", "--to", PERSON, "--text", "hello", "--key", "lost", "--json")
    res = yaml.safe_load(out)
    assert code == 1 and res["state"] == "unknown" and "may have been delivered" in res["reason"]
    assert "igsched actions retry lost" in res["reason"]
    assert len(cli.emu.state.sent_messages()) == 1 and len(cli.requests("messages")) == 1
    code, _, _ = cli.run("message", "send", "--to", PERSON, "--text", "hello", "--key", "lost")
    assert code == 1 and len(cli.requests("messages")) == 1  # the key: never sent again by itself
    # on a person's word it goes again (and may arrive twice, which they accepted)
    again = cli.json("actions", "retry", "lost")
    assert again["state"] == "done" and len(cli.emu.state.sent_messages()) == 2
    assert cli.json("actions", "--state", "done")[0]["key"] == "lost"


def test_a_hide_whose_answer_is_lost_is_retried_and_ends_done(cli: Cli) -> None:
    media = cli.media()
    comment = cli.emu.state.add_comment(media, "spam", "bot")
    cli.emu.state.inject_fault("comment", "drop_after")
    res = cli.json("comments", "hide", comment)
    assert res["state"] == "done" and res["success"] is True
    posts = cli.requests("comment", "POST")
    assert [r["outcome"] for r in posts] == ["dropped", "ok"]
    assert next(c for c in cli.emu.state.comments(media) if c["id"] == comment)["hidden"] is True


def test_a_public_reply_whose_answer_is_lost_is_found_not_sent_again(cli: Cli) -> None:
    media = cli.media()
    top = cli.emu.state.add_comment(media, "question", "visitor")
    cli.emu.state.inject_fault("replies", "drop_after")
    res = cli.json("comments", "reply", top, "Answer")
    assert res["state"] == "done" and res["id"]
    assert len(cli.requests("replies", "POST")) == 1  # looked for, found: not sent again
    assert cli.requests("replies", "GET")  # the account's own replies were read
    mine = [c for c in cli.emu.state.comments(media) if c.get("parent_id") == top]
    assert [c["id"] for c in mine] == [res["id"]]


# --------------------------------------------------------------------------- Meta's refusals, throttling


@pytest.mark.parametrize(("person", "reason"), [
    ({"unavailable": True}, "the person is not available"),
    ({"dms_disabled": True}, "the person does not accept messages"),
    ({"last_message_s_ago": 2 * 86400}, "outside the messaging window"),
])
def test_meta_refusals_fail_the_action_with_a_clear_reason(cli: Cli, person: dict[str, object], reason: str) -> None:
    cli.emu.state.add_person("1111", **person)  # type: ignore[arg-type]
    code, out, _ = cli.run("message", "send", "--to", "1111", "--text", "hi", "--json")
    res = yaml.safe_load(out)
    assert code == 1 and res["state"] == "failed" and reason in res["reason"]
    assert len(cli.requests("messages")) == 1  # not retried


def test_throttling_pauses_the_account_and_defers(cli: Cli) -> None:
    cli.emu.state.inject("messages", 80002, message="too many calls", is_transient=True)
    res = cli.json("message", "send", "--to", PERSON, "--text", "one")
    assert res["state"] == "deferred" and "throttled" in res["reason"]
    before = len(cli.emu.state.requests)
    res2 = cli.json("message", "send", "--to", PERSON, "--text", "two")  # the pause is in the database
    assert res2["state"] == "deferred" and len(cli.emu.state.requests) == before
    assert cli.json("quota")[0]["paused"] is True


# --------------------------------------------------------------------------- budgets


def test_over_the_messages_budget_an_action_waits_deferred(tmp_path: Path, db_url: str, emulator: RunningEmulator,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    c = make_cli(tmp_path, db_url, emulator, monkeypatch, engagement={"messages_per_hour": 2})
    for i in range(2):
        assert c.json("message", "send", "--to", PERSON, "--text", f"m{i}")["state"] == "done"
    res = c.json("message", "send", "--to", PERSON, "--text", "m2", "--key", "third")
    assert res["state"] == "deferred" and "messages budget: 2 of 2 sent by account shop in the last hour" in res["reason"]
    assert "next free slot at" in res["reason"] and len(c.requests("messages")) == 2  # never sent to be refused
    row = next(r for r in c.json("actions") if r["key"] == "third")
    assert row["state"] == "deferred" and row["next_action_at"] > row["created_at"]


def test_over_the_private_replies_budget(tmp_path: Path, db_url: str, emulator: RunningEmulator,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    c = make_cli(tmp_path, db_url, emulator, monkeypatch, engagement={"private_replies_per_hour": 1})
    media = c.media()
    a, b = (c.emu.state.add_comment(media, f"c{i}", "v", from_id=PERSON) for i in range(2))
    assert c.json("comments", "private-reply", a, "one")["state"] == "done"
    res = c.json("comments", "private-reply", b, "two")
    assert res["state"] == "deferred" and "private replies budget: 1 of 1" in res["reason"]
    assert len(c.requests("messages")) == 1


# --------------------------------------------------------------------------- profiles


def test_profile_is_cached_and_refreshed_on_request(tmp_path: Path, db_url: str, emulator: RunningEmulator,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    c = make_cli(tmp_path, db_url, emulator, monkeypatch, engagement={"profile_lookups_per_hour": 2})
    first = c.json("profile", PERSON)
    assert first == {"id": PERSON, "name": "Ada Lovelace", "username": "ada",
                     "profile_pic": "https://cdn.example.com/ada.jpg"}
    [req] = c.requests("profile")
    assert req["params"] == {"fields": "name,username,profile_pic"}
    assert c.json("profile", PERSON) == first and len(c.requests("profile")) == 1  # from the cache
    assert c.json("profile", PERSON, "--fields", "username") == {"id": PERSON, "username": "ada"}
    assert len(c.requests("profile")) == 1
    c.emu.state.add_person(PERSON, name="Ada King")
    assert c.json("profile", PERSON, "--refresh")["name"] == "Ada King" and len(c.requests("profile")) == 2
    code, _, err = c.run("profile", PERSON, "--refresh")  # over the app's budget: no call
    assert code == 1 and "profile lookups budget: 2 of 2" in err and len(c.requests("profile")) == 2


# --------------------------------------------------------------------------- account choice


def test_account_may_be_left_out_only_with_one_account(tmp_path: Path, db_url: str, emulator: RunningEmulator,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    c = make_cli(tmp_path, db_url, emulator, monkeypatch, two_accounts=True)
    code, _, err = c.run("message", "send", "--to", PERSON, "--text", "hi")
    assert code == 2 and "say which account (configured: shop, brand2)" in err and c.emu.state.requests == []
    assert c.json("message", "send", "--to", PERSON, "--text", "hi", "--account", "brand2")["state"] == "done"
    assert c.requests("messages")[0]["account"] == "17841400000000002"
    assert [r["account"] for r in c.json("actions", "--account", "brand2")] == ["brand2"]
    assert c.json("actions", "--account", "shop") == []


# --------------------------------------------------------------------------- the 24-hour window


def _person_wrote(cli: Cli, hours_ago: float) -> None:
    """The webhook receiver stored a message from PERSON to the account `hours_ago` ago."""
    at_ms = int((time.time() - hours_ago * 3600) * 1000)
    body = {"object": "instagram", "entry": [{"id": IG, "time": at_ms, "messaging": [{
        "sender": {"id": PERSON}, "recipient": {"id": IG}, "timestamp": at_ms,
        "message": {"mid": f"m-{at_ms}", "text": "hello?"}}]}]}
    events = normalise(parse_body(json.dumps(body).encode())).events
    Store(cli.db_url).store_webhook_events(events, {IG: "shop"})


def test_a_dm_past_the_24_hour_window_fails_before_any_call(cli: Cli) -> None:
    _person_wrote(cli, hours_ago=25)
    code, out, _ = cli.run("message", "send", "--to", PERSON, "--text", "sorry for the wait", "--json")
    res = json.loads(out)
    assert code == 1 and res["state"] == "failed"
    assert "last wrote 25.0 hours ago; a message must follow within 24 hours" in res["reason"]
    assert cli.requests("messages") == []


def test_a_dm_inside_the_window_is_sent(cli: Cli) -> None:
    _person_wrote(cli, hours_ago=23)
    assert cli.json("message", "send", "--to", PERSON, "--text", "on it")["state"] == "done"
    assert len(cli.requests("messages")) == 1
