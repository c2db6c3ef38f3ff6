"""A reply to a mention, over real HTTP: a comment on ANOTHER account's media that @mentions
the account is answered through `POST /{ig-user-id}/mentions` (media_id, comment_id,
message), not `/{comment-id}/replies`, which works only on the account's own media.

The GraphClient method and the emulator's validation first, then the whole path on SQLite
and PostgreSQL: a signed mention webhook, a `reply` rule, exactly one call with the exact
parameters; and a reply whose answer was lost is `unknown`, never sent again by itself."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import pytest

from scheduler.emulator import RunningEmulator
from scheduler.graph import CallRecord, GraphClient, GraphError
from scheduler.store import Store
from tests.e2e.test_webhook_flow import _all_finished, deliver, webhook_settings
from tests.kinds_support import SHOP_ID, TOKENS, add_accounts
from tests.webhook_support import DaemonThread

FRIEND_ID = "17841400000000077"  # another account, not configured in igsched
FRIEND_TOKEN = "tok-friend-secret"
VERSION = "v23.0"
MENTION_RULE = [{"name": "thanks", "on": "mention", "reply": "Thanks for the mention!"}]
T = TypeVar("T")


@pytest.fixture(autouse=True)
def _secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IGSCHED_TEST_APP_SECRET", "e2e-app-secret-0123")
    monkeypatch.setenv("IGSCHED_TEST_VERIFY_TOKEN", "e2e-verify-token")
    monkeypatch.setenv("IGSCHED_TEST_FORWARD_SECRET", "e2e-forward-secret-4567")
    monkeypatch.setenv("IGSCHED_TEST_TOKEN_SHOP", TOKENS["shop"])
    monkeypatch.setenv("IGSCHED_TEST_TOKEN_BRAND2", TOKENS["brand2"])


@pytest.fixture
def emu() -> Iterator[RunningEmulator]:
    with RunningEmulator() as running:
        add_accounts(running)
        running.state.add_account(FRIEND_ID, username="friend", token=FRIEND_TOKEN)
        yield running


def run(emu: RunningEmulator, fn: Callable[[GraphClient], Awaitable[T]]) -> tuple[T, list[CallRecord]]:
    records: list[CallRecord] = []

    async def main() -> T:
        async with GraphClient(emu.base_url, VERSION, 10.0, on_call=records.append) as client:
            return await fn(client)

    return asyncio.run(main()), records


def refusal(emu: RunningEmulator, fn: Callable[[GraphClient], Awaitable[Any]]) -> GraphError:
    async def go(client: GraphClient) -> GraphError:
        with pytest.raises(GraphError) as info:
            await fn(client)
        return info.value

    return run(emu, go)[0]


def friends_media(emu: RunningEmulator) -> str:
    """A post of another account (the mention happens on media the shop does not own)."""
    async def go(client: GraphClient) -> str:
        cid = await client.create_container(FRIEND_ID, FRIEND_TOKEN, {"image_url": "https://cdn.example.com/f.jpg"})
        emu.state.advance(5)
        return await client.publish(FRIEND_ID, FRIEND_TOKEN, cid)

    return run(emu, go)[0]


def mention_calls(emu: RunningEmulator) -> list[dict[str, Any]]:
    return [r for r in emu.state.requests if r["endpoint"] == "mentions"]


def test_reply_to_mention_sends_the_exact_params_and_returns_the_new_comment(emu: RunningEmulator) -> None:
    media = friends_media(emu)
    comment = emu.state.add_comment(media, "love this, @shop", username="fan", from_id="7101")

    reply_id, records = run(emu, lambda c: c.reply_to_mention(SHOP_ID, TOKENS["shop"], media, comment, "Thank you!"))

    [call] = mention_calls(emu)
    assert (call["method"], call["path"], call["account"]) == ("POST", f"/{VERSION}/{SHOP_ID}/mentions", SHOP_ID)
    assert call["params"] == {"media_id": media, "comment_id": comment, "message": "Thank you!"}
    assert [r.endpoint for r in records] == ["POST /{ig-user-id}/mentions"]
    assert records[0].outcome == "ok"
    made = {c["id"]: c for c in emu.state.comments(media)}[reply_id]
    assert (made["parent_id"], made["username"], made["text"]) == (comment, "shop", "Thank you!")
    assert TOKENS["shop"] not in repr(call)


def test_the_emulator_refuses_a_mention_reply_as_meta_does(emu: RunningEmulator) -> None:
    media = friends_media(emu)
    other = friends_media(emu)
    comment = emu.state.add_comment(media, "@shop look", username="fan")
    shop = TOKENS["shop"]

    no_text = refusal(emu, lambda c: c.reply_to_mention(SHOP_ID, shop, media, comment, ""))
    assert (no_text.code, no_text.subcode) == (100, None) and "message" in str(no_text)
    unknown = refusal(emu, lambda c: c.reply_to_mention(SHOP_ID, shop, media, "17999999999999999", "hi"))
    assert (unknown.code, unknown.subcode) == (100, 33)
    elsewhere = refusal(emu, lambda c: c.reply_to_mention(SHOP_ID, shop, other, comment, "hi"))
    assert elsewhere.code == 100

    async def raw(client: GraphClient, data: dict[str, str]) -> dict[str, Any]:
        body, _ = await client.request("POST", f"{SHOP_ID}/mentions", shop, data=data)
        return body

    no_media = refusal(emu, lambda c: raw(c, {"comment_id": comment, "message": "hi"}))
    assert no_media.code == 100 and "media_id" in str(no_media)
    stray = refusal(emu, lambda c: raw(c, {"media_id": media, "comment_id": comment, "message": "hi", "x": "1"}))
    assert stray.code == 100
    assert emu.state.get_comment(comment).replies == []  # nothing refused was created
    # no comment_id: Meta's reply to a caption mention, a comment on the media itself
    caption = run(emu, lambda c: raw(c, {"media_id": media, "message": "Thanks for the tag"}))[0]
    assert {c["id"]: c for c in emu.state.comments(media)}[caption["id"]]["parent_id"] is None


def test_the_client_refuses_an_empty_id_before_any_call(emu: RunningEmulator) -> None:
    async def go(client: GraphClient) -> str:
        return await client.reply_to_mention(SHOP_ID, TOKENS["shop"], "", "123", "hi")

    with pytest.raises(ValueError, match="media id"):
        run(emu, go)
    assert mention_calls(emu) == []


def _mention(emu: RunningEmulator) -> tuple[str, str]:
    media = friends_media(emu)
    comment = emu.state.add_comment(media, "best shop in town @shop", username="fan", from_id="7102")
    return media, comment


def test_a_mention_rule_replies_once_through_the_mentions_edge(db_url: str, emu: RunningEmulator) -> None:
    media, comment = _mention(emu)
    store = Store(db_url)
    with DaemonThread(webhook_settings(db_url, emu, rules=MENTION_RULE), store) as d:
        out = deliver(emu, d.url, [{"kind": "mention", "account": SHOP_ID, "media_id": media,
                                    "comment_id": comment}], repeat=2)
        assert [r["status"] for r in out["deliveries"]] == [200, 200]
        d.wait_for(lambda: _all_finished(store, 1))
    [event] = store.webhook_events()
    assert (event.kind, event.media_id, event.comment_id, event.rule_actions) == ("mention", media, comment, 1)
    [call] = mention_calls(emu)
    assert (call["method"], call["path"]) == ("POST", f"/{VERSION}/{SHOP_ID}/mentions")
    assert call["params"] == {"media_id": media, "comment_id": comment, "message": "Thanks for the mention!"}
    assert [r for r in emu.state.requests if r["endpoint"] == "replies"] == []
    [action] = store.list_actions()
    assert (action.kind, action.target, action.state, action.key) == (
        "reply", comment, "done", f"rule:thanks:{event.id}:reply")
    [reply_id] = emu.state.get_comment(comment).replies
    assert action.result_id == reply_id
    assert emu.state.get_comment(reply_id).text == "Thanks for the mention!"


def test_a_mention_reply_whose_answer_was_lost_is_unknown_and_not_sent_again(
    db_url: str, emu: RunningEmulator
) -> None:
    media, comment = _mention(emu)
    emu.state.inject_fault("mentions", "drop_after")  # Meta made the reply; the answer is lost
    store = Store(db_url)
    with DaemonThread(webhook_settings(db_url, emu, rules=MENTION_RULE), store) as d:
        deliver(emu, d.url, [{"kind": "mention", "account": SHOP_ID, "media_id": media, "comment_id": comment}])
        d.wait_for(lambda: _all_finished(store, 1))
    [action] = store.list_actions()
    assert action.state == "unknown" and "reply to the mention" in (action.reason or "")
    assert len(mention_calls(emu)) == 1
    assert len(emu.state.get_comment(comment).replies) == 1  # exactly the one Meta made


def test_a_mention_without_its_media_id_fails_before_any_call(db_url: str, emu: RunningEmulator) -> None:
    _, comment = _mention(emu)
    store = Store(db_url)
    with DaemonThread(webhook_settings(db_url, emu, rules=MENTION_RULE), store) as d:
        deliver(emu, d.url, [{"kind": "mention", "account": SHOP_ID, "comment_id": comment}])
        d.wait_for(lambda: _all_finished(store, 1))
    [action] = store.list_actions()
    assert action.state == "failed" and "media id" in (action.reason or "")
    assert mention_calls(emu) == []
