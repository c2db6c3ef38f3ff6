"""End to end: GraphClient's engagement calls against the emulator over real HTTP.

Each test asserts the exact request (JSON body or parameters) from the emulator's log, and
the emulator answers with Meta's validation and refusals (facts sheet §6-7).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import httpx
import pytest

from scheduler.emulator import RunningEmulator
from scheduler.engage.messages import parse_message
from scheduler.graph import CallRecord, ErrorClass, GraphClient, GraphError
from scheduler.graph.engagement import Button, Card, CommentInfo, QuickReply
from scheduler.graph.errors import messaging_refusal

TOKEN = "IGAAJemulatorTOKEN0123456789abcdefXYZ"
IG = "17841400000000001"
PAGE = "104000000000042"
PERSON = "6543210987654321"
VERSION = "v23.0"
T = TypeVar("T")


@pytest.fixture
def emu() -> Iterator[RunningEmulator]:
    with RunningEmulator() as running:
        running.state.add_account(IG, username="shop", token=TOKEN, page_id=PAGE)
        running.state.add_person(PERSON, name="Ada Lovelace", username="ada")
        yield running


def run(
    emu: RunningEmulator, fn: Callable[[GraphClient], Awaitable[T]]
) -> tuple[T, list[CallRecord]]:
    records: list[CallRecord] = []

    async def main() -> T:
        async with GraphClient(emu.base_url, VERSION, 10.0, on_call=records.append) as client:
            return await fn(client)

    return asyncio.run(main()), records


def calls(emu: RunningEmulator, endpoint: str) -> list[dict[str, Any]]:
    return [r for r in emu.state.requests if r["endpoint"] == endpoint]


def last_body(emu: RunningEmulator) -> Any:
    return calls(emu, "messages")[-1]["body"]


def publish_image(emu: RunningEmulator) -> str:
    async def go(client: GraphClient) -> str:
        cid = await client.create_container(
            IG, TOKEN, {"image_url": "https://cdn.example.com/a.jpg"}
        )
        emu.state.advance(5)
        return await client.publish(IG, TOKEN, cid)

    return run(emu, go)[0]


def control(emu: RunningEmulator, path: str, body: Any) -> Any:
    resp = httpx.post(f"{emu.base_url}/_emulator/{path}", json=body)
    assert resp.status_code == 200, resp.text
    return resp.json()


def refusal(emu: RunningEmulator, fn: Callable[[GraphClient], Awaitable[Any]]) -> GraphError:
    async def go(client: GraphClient) -> GraphError:
        with pytest.raises(GraphError) as info:
            await fn(client)
        return info.value

    return run(emu, go)[0]


# --------------------------------------------------------------------------- messages
def test_text_with_quick_replies_exact_body_and_record(emu: RunningEmulator) -> None:
    replies = [
        QuickReply("Red", "COLOR_RED"),
        QuickReply("Blue", "COLOR_BLUE", "https://x.io/b.png"),
    ]
    sent, records = run(emu, lambda c: c.send_text(TOKEN, PERSON, "Favourite colour?", replies))
    assert sent.recipient_id == PERSON and sent.message_id
    assert last_body(emu) == {
        "recipient": {"id": PERSON},
        "message": {
            "text": "Favourite colour?",
            "quick_replies": [
                {"content_type": "text", "title": "Red", "payload": "COLOR_RED"},
                {
                    "content_type": "text",
                    "title": "Blue",
                    "payload": "COLOR_BLUE",
                    "image_url": "https://x.io/b.png",
                },
            ],
        },
    }
    [record] = records
    assert (record.endpoint, record.outcome, record.path) == (
        "POST /me/messages",
        "ok",
        f"/{VERSION}/me/messages",
    )
    assert record.usage.buc  # usage headers read from the answer
    assert emu.state.sent_messages(IG)[0]["message_id"] == sent.message_id


@pytest.mark.parametrize("kind", ["image", "audio", "video"])
def test_attachment_by_url_with_is_reusable(emu: RunningEmulator, kind: Any) -> None:
    url = f"https://cdn.example.com/file.{kind}"
    run(emu, lambda c: c.send_attachment(TOKEN, PERSON, kind, url, reusable=True))
    assert last_body(emu) == {
        "recipient": {"id": PERSON},
        "message": {"attachment": {"type": kind, "payload": {"url": url, "is_reusable": True}}},
    }


def test_button_template_exact_body(emu: RunningEmulator) -> None:
    buttons = [Button("Visit Shop", url="https://shop.example.com"), Button("Help", payload="HELP")]
    run(emu, lambda c: c.send_button_template(TOKEN, PERSON, "How can we help?", buttons))
    assert last_body(emu) == {
        "recipient": {"id": PERSON},
        "message": {
            "attachment": {
                "type": "template",
                "payload": {
                    "template_type": "button",
                    "text": "How can we help?",
                    "buttons": [
                        {
                            "type": "web_url",
                            "url": "https://shop.example.com",
                            "title": "Visit Shop",
                        },
                        {"type": "postback", "title": "Help", "payload": "HELP"},
                    ],
                },
            }
        },
    }


def test_generic_template_from_a_message_file_shape(emu: RunningEmulator) -> None:
    message = parse_message(
        {
            "to": PERSON,
            "cards": [
                {
                    "title": "Summer Collection",
                    "subtitle": "New arrivals",
                    "image": "https://example.com/summer.jpg",
                    "url": "https://shop.example.com/summer",
                    "buttons": [{"title": "Shop Now", "url": "https://shop.example.com/summer"}],
                },
                {"title": "Sale"},
            ],
        }
    )
    run(emu, lambda c: c.send_message(TOKEN, message.request_body()))
    assert last_body(emu) == {
        "recipient": {"id": PERSON},
        "message": {
            "attachment": {
                "type": "template",
                "payload": {
                    "template_type": "generic",
                    "elements": [
                        {
                            "title": "Summer Collection",
                            "subtitle": "New arrivals",
                            "image_url": "https://example.com/summer.jpg",
                            "default_action": {
                                "type": "web_url",
                                "url": "https://shop.example.com/summer",
                            },
                            "buttons": [
                                {
                                    "type": "web_url",
                                    "url": "https://shop.example.com/summer",
                                    "title": "Shop Now",
                                }
                            ],
                        },
                        {"title": "Sale"},
                    ],
                },
            }
        },
    }
    cards = (Card("Sale"),)
    run(emu, lambda c: c.send_generic_template(TOKEN, PERSON, cards))
    assert last_body(emu)["message"]["attachment"]["payload"]["elements"] == [{"title": "Sale"}]


def test_media_share_of_an_own_post_only(emu: RunningEmulator) -> None:
    media_id = publish_image(emu)
    run(emu, lambda c: c.send_media_share(TOKEN, PERSON, media_id))
    assert last_body(emu) == {
        "recipient": {"id": PERSON},
        "message": {"attachment": {"type": "MEDIA_SHARE", "payload": {"id": media_id}}},
    }
    err = refusal(emu, lambda c: c.send_media_share(TOKEN, PERSON, "18000000000999999"))
    assert (err.code, err.error_class) == (100, ErrorClass.PERMANENT)


def test_facebook_login_sends_through_the_page(emu: RunningEmulator) -> None:
    _, records = run(emu, lambda c: c.send_text(TOKEN, PERSON, "Hi", sender=PAGE))
    assert records[0].endpoint == "POST /{page-id}/messages"
    entry = calls(emu, "messages")[-1]
    assert entry["path"] == f"/{VERSION}/{PAGE}/messages" and entry["account"] == IG
    assert emu.state.sent_messages(IG)[-1]["recipient_id"] == PERSON


def test_emulator_applies_metas_message_limits(emu: RunningEmulator) -> None:
    def raw(message: dict[str, Any]) -> Callable[[GraphClient], Awaitable[Any]]:
        return lambda c: c.send_message(TOKEN, {"recipient": {"id": PERSON}, "message": message})

    too_long = "é" * 501  # 1,002 bytes in UTF-8, 501 characters
    four = [{"type": "postback", "title": f"B{i}", "payload": "P"} for i in range(4)]
    bad = [
        {"text": too_long},
        {"text": "x", "attachment": {"type": "image", "payload": {"url": "https://a.io/x"}}},
        {
            "attachment": {
                "type": "template",
                "payload": {"template_type": "button", "text": "t", "buttons": four},
            }
        },
        {
            "attachment": {
                "type": "template",
                "payload": {"template_type": "generic", "elements": [{"title": "x" * 81}]},
            }
        },
        {
            "text": "x",
            "quick_replies": [{"content_type": "text", "title": "t", "payload": "p"}] * 14,
        },
        {"text": "x", "unknown": 1},
    ]
    for message in bad:
        err = refusal(emu, raw(message))
        assert err.code == 100, message
    assert emu.state.sent_messages() == []
    # Quick-reply titles are cut at 20 characters, not refused (facts sheet §6).
    long_title = [{"content_type": "text", "title": "t" * 25, "payload": "p"}]
    run(emu, raw({"text": "x", "quick_replies": long_title}))
    assert emu.state.sent_messages()[-1]["message"]["quick_replies"][0]["title"] == "t" * 20


def test_refusals_about_the_person_are_classified(emu: RunningEmulator) -> None:
    control(
        emu,
        "people",
        [
            {"igsid": "111", "unavailable": True},
            {"igsid": "222", "dms_disabled": True},
            {"igsid": "333", "last_message_s_ago": 25 * 3600},
        ],
    )
    expected = {"111": (551, 1545041), "222": (200, 2534041), "333": (10, 2534022)}
    for igsid, (code, subcode) in expected.items():
        err = refusal(emu, lambda c, i=igsid: c.send_text(TOKEN, i, "Hello"))  # type: ignore[misc]
        assert (err.code, err.subcode, err.error_class) == (code, subcode, ErrorClass.PERMANENT)
        assert messaging_refusal(err)
    unknown = refusal(emu, lambda c: c.send_text(TOKEN, "999", "Hello"))
    assert (unknown.code, unknown.subcode, unknown.error_class) == (
        100,
        2018001,
        ErrorClass.PERMANENT,
    )
    assert messaging_refusal(unknown) is None
    assert emu.state.sent_messages() == []

    # HUMAN_AGENT stretches the window to 7 days.
    body = {
        "recipient": {"id": "333"},
        "message": {"text": "Sorry for the wait"},
        "messaging_type": "MESSAGE_TAG",
        "tag": "HUMAN_AGENT",
    }
    run(emu, lambda c: c.send_message(TOKEN, body))
    assert last_body(emu) == body
    # Someone who wrote an hour ago is inside the window.
    control(emu, "people", {"igsid": "444", "last_message_s_ago": 3600})
    run(emu, lambda c: c.send_text(TOKEN, "444", "Hi"))


def test_send_api_throttling_pauses_like_publishing(emu: RunningEmulator) -> None:
    emu.state.inject("messages", 613)
    err = refusal(emu, lambda c: c.send_text(TOKEN, PERSON, "Hi"))
    assert err.error_class is ErrorClass.THROTTLED
    emu.state.inject("messages", 80006)
    err = refusal(emu, lambda c: c.send_text(TOKEN, PERSON, "Hi"))
    assert err.error_class is ErrorClass.THROTTLED


# --------------------------------------------------------------------------- private replies
def test_private_reply_once_per_comment_within_seven_days(emu: RunningEmulator) -> None:
    media_id = publish_image(emu)
    first = emu.state.add_comment(media_id, "price?", username="fan", from_id="5550001")
    old = emu.state.add_comment(media_id, "old one", username="fan2")
    emu.state.advance(6 * 86400)
    sent, records = run(emu, lambda c: c.private_reply(TOKEN, first, "Sent you the prices"))
    assert sent.recipient_id == "5550001"
    assert last_body(emu) == {
        "recipient": {"comment_id": first},
        "message": {"text": "Sent you the prices"},
    }
    assert records[0].endpoint == "POST /me/messages"
    again = refusal(emu, lambda c: c.private_reply(TOKEN, first, "And again"))
    assert (again.code, again.error_class) == (100, ErrorClass.PERMANENT)
    emu.state.advance(2 * 86400)  # `old` is now 8 days old
    late = refusal(emu, lambda c: c.private_reply(TOKEN, old, "Late"))
    assert (late.code, late.subcode, late.error_class) == (10, 2534022, ErrorClass.PERMANENT)
    assert len(emu.state.sent_messages()) == 1


# --------------------------------------------------------------------------- comments
def test_list_all_comments_follows_paging_and_limit_stops_early(emu: RunningEmulator) -> None:
    media_id = publish_image(emu)
    ids = control(emu, "comments", {"media_id": media_id, "count": 120})["ids"]
    assert len(ids) == 120
    parent = ids[-1]  # the newest: first in the list
    emu.state.add_comments(media_id, 30, "reply", parent_id=parent)
    emu.state.add_comment(media_id, "one reply", parent_id=ids[0])
    start = len(emu.state.requests)

    everything, _ = run(emu, lambda c: c.list_comments(media_id, TOKEN, limit=None))
    assert len(everything) == 120 and len({c.id for c in everything}) == 120
    assert everything[0].id == parent and everything[0].replies_count == 30
    assert everything[-1].id == ids[0] and everything[-1].replies_count == 1
    assert everything[1].replies_count == 0
    log = emu.state.requests[start:]
    pages = [r for r in log if r["endpoint"] == "comments"]
    assert len(pages) == 3  # 50 + 50 + 20
    assert pages[0]["params"] == {
        "fields": "id,text,username,timestamp,like_count,replies{id}",
        "limit": "50",
    }
    assert "after" in pages[1]["params"]
    # 30 replies: the nested edge shows 25 and a next page, so the replies edge is counted.
    assert len([r for r in log if r["endpoint"] == "replies"]) == 1

    start = len(emu.state.requests)
    seven, _ = run(emu, lambda c: c.list_comments(media_id, TOKEN, limit=7))
    assert [c.id for c in seven] == [c.id for c in everything[:7]]
    [page] = [r for r in emu.state.requests[start:] if r["endpoint"] == "comments"]
    assert page["params"]["limit"] == "7"
    assert seven[2].as_dict() == {
        "id": seven[2].id,
        "text": seven[2].text,
        "username": seven[2].username,
        "timestamp": seven[2].timestamp,
        "like_count": 0,
        "replies_count": 0,
    }


def test_a_short_page_is_not_the_end(emu: RunningEmulator) -> None:
    media_id = publish_image(emu)
    emu.state.add_comments(media_id, 12)
    control(emu, "config", {"comments_page_cap": 5})  # Meta may answer fewer than asked
    got, _ = run(emu, lambda c: c.list_comments(media_id, TOKEN, limit=None))
    assert len(got) == 12
    pages = calls(emu, "comments")
    assert [p["params"]["limit"] for p in pages] == ["50", "50", "50"]  # 5 + 5 + 2
    some, _ = run(emu, lambda c: c.list_comments(media_id, TOKEN, limit=8))
    assert [c.id for c in some] == [c.id for c in got[:8]]
    assert [p["params"]["limit"] for p in calls(emu, "comments")[3:]] == ["8", "3"]


def test_replies_reply_hide_unhide_delete(emu: RunningEmulator) -> None:
    media_id = publish_image(emu)
    comment = emu.state.add_comment(media_id, "love it", username="fan")
    emu.state.add_comments(media_id, 60, "thread", parent_id=comment)

    async def go(c: GraphClient) -> tuple[list[CommentInfo], list[CommentInfo], str]:
        everything = await c.list_replies(comment, TOKEN, limit=None)
        three = await c.list_replies(comment, TOKEN, limit=3)
        reply_id = await c.reply_to_comment(comment, TOKEN, "Thank you!")
        return everything, three, reply_id

    (everything, three, reply_id), records = run(emu, go)
    assert len(everything) == 60 and everything[0].text == "thread 0"  # oldest first
    assert [r.id for r in three] == [r.id for r in everything[:3]]
    assert all(r.replies_count is None for r in everything)
    post = calls(emu, "replies")[-1]
    assert (post["method"], post["params"]) == ("POST", {"message": "Thank you!"})
    assert emu.state.comments(media_id)[-1]["id"] == reply_id
    assert {r.endpoint for r in records} == {
        "GET /{comment-id}/replies",
        "POST /{comment-id}/replies",
    }

    assert run(emu, lambda c: c.hide_comment(comment, TOKEN))[0] is True
    entry = calls(emu, "comment")[-1]
    assert (entry["method"], entry["params"]) == ("POST", {"hide": "true"})
    hidden = refusal(emu, lambda c: c.reply_to_comment(comment, TOKEN, "to a hidden one"))
    assert hidden.code == 100
    assert run(emu, lambda c: c.unhide_comment(comment, TOKEN))[0] is True
    assert calls(emu, "comment")[-1]["params"] == {"hide": "false"}
    run(emu, lambda c: c.reply_to_comment(comment, TOKEN, "visible again"))

    assert run(emu, lambda c: c.delete_comment(comment, TOKEN))[0] is True
    assert calls(emu, "comment")[-1]["method"] == "DELETE"
    assert emu.state.comments(media_id) == []
    gone = refusal(emu, lambda c: c.delete_comment(comment, TOKEN))
    assert (gone.code, gone.subcode) == (100, 33)


def test_replies_count_is_not_a_field(emu: RunningEmulator) -> None:
    media_id = publish_image(emu)
    emu.state.add_comment(media_id, "hi")
    resp = httpx.get(
        f"{emu.base_url}/{VERSION}/{media_id}/comments",
        params={"fields": "id,replies_count"},
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert resp.json()["error"]["code"] == 100


# --------------------------------------------------------------------------- profiles
def test_profile_default_and_chosen_fields(emu: RunningEmulator) -> None:
    profile, records = run(emu, lambda c: c.profile(PERSON, TOKEN))
    assert (profile.id, profile.name, profile.username) == (PERSON, "Ada Lovelace", "ada")
    assert profile.profile_pic and profile.profile_pic.startswith("https://")
    assert calls(emu, "profile")[-1]["params"] == {"fields": "id,name,username,profile_pic"}
    assert records[0].endpoint == "GET /{igsid}"

    chosen, _ = run(emu, lambda c: c.profile(PERSON, TOKEN, fields=("username", "follower_count")))
    assert chosen.fields == {"id": PERSON, "username": "ada", "follower_count": 0}
    assert chosen.name is None
    bad = refusal(emu, lambda c: c.profile(PERSON, TOKEN, fields=("email",)))
    assert bad.code == 100


# --------------------------------------------------------------------------- lost answers
def test_lost_answers_are_ambiguous_and_a_lost_reply_can_be_found(emu: RunningEmulator) -> None:
    media_id = publish_image(emu)
    comment = emu.state.add_comment(media_id, "where is it sold?", username="fan")

    emu.state.inject_fault("messages", "drop_after")
    lost_dm = refusal(emu, lambda c: c.send_text(TOKEN, PERSON, "Here"))
    assert lost_dm.error_class is ErrorClass.AMBIGUOUS
    assert len(emu.state.sent_messages()) == 1  # Meta had accepted it: never send it again

    emu.state.inject_fault("comment", "drop_after")
    lost_hide = refusal(emu, lambda c: c.hide_comment(comment, TOKEN))
    assert lost_hide.error_class is ErrorClass.AMBIGUOUS
    assert run(emu, lambda c: c.hide_comment(comment, TOKEN))[0] is True  # idempotent
    assert run(emu, lambda c: c.unhide_comment(comment, TOKEN))[0] is True

    emu.state.inject_fault("replies", "drop_after")
    lost_reply = refusal(emu, lambda c: c.reply_to_comment(comment, TOKEN, "In our shop"))
    assert lost_reply.error_class is ErrorClass.AMBIGUOUS
    found, _ = run(emu, lambda c: c.find_reply(comment, TOKEN, username="shop", text="In our shop"))
    assert found is not None and found.id == emu.state.comments(media_id)[-1]["id"]
    missing, _ = run(emu, lambda c: c.find_reply(comment, TOKEN, username="shop", text="Other"))
    assert missing is None


def test_comment_info_gives_the_timestamp(emu: RunningEmulator) -> None:
    media_id = publish_image(emu)
    comment = emu.state.add_comment(media_id, "hello", username="fan", like_count=3)
    info, records = run(emu, lambda c: c.comment_info(comment, TOKEN))
    assert (info.id, info.text, info.username, info.like_count) == (comment, "hello", "fan", 3)
    assert info.timestamp == emu.state.comments(media_id)[0]["timestamp"]
    assert records[0].endpoint == "GET /{comment-id}"
