"""Outbound messages: every limit refused with its field and rule; rendering to Meta's body."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from scheduler.engage.messagefile import load_message_file
from scheduler.engage.messages import (
    Attachment,
    GenericTemplate,
    MediaShare,
    OutboundMessage,
    Text,
    message_from_flags,
    parse_message,
    url_problem,
)
from scheduler.graph.engagement import Button, Card, QuickReply
from scheduler.problems import InvalidInput

TO = "1234567890"
SHOP = "https://shop.example.com"
LIMIT = 5_000_000  # queue.max_file_bytes default


def problems(data: Any) -> list[tuple[str | None, str]]:
    with pytest.raises(InvalidInput) as info:
        parse_message(data, source="msg.yaml")
    assert all(p.file == "msg.yaml" for p in info.value.problems)
    return [(p.field, p.message) for p in info.value.problems]


def refused(data: Any, field: str | None, fragment: str) -> None:
    found = problems(data)
    assert any(f == field and fragment in m for f, m in found), found


def buttons(n: int) -> list[dict[str, str]]:
    return [{"title": f"B{i}", "postback": f"P{i}"} for i in range(n)]


def cards(n: int) -> list[dict[str, str]]:
    return [{"title": f"Card {i}"} for i in range(n)]


def replies(n: int) -> list[dict[str, str]]:
    return [{"title": f"R{i}", "payload": f"P{i}"} for i in range(n)]


# --- accepted forms and their rendering ------------------------------------------------------


def test_text_at_the_byte_limit_and_quick_replies() -> None:
    text = "é" * 500  # exactly 1,000 bytes
    m = parse_message({"to": TO, "text": text, "quick_replies": replies(13)})
    assert m.kind == "text" and m.to == TO and not m.is_private_reply
    assert isinstance(m.content, Text) and len(m.content.quick_replies) == 13
    body = m.request_body()
    assert body["recipient"] == {"id": TO}
    assert body["message"]["text"] == text
    assert body["message"]["quick_replies"][0] == {
        "content_type": "text",
        "title": "R0",
        "payload": "P0",
    }


def test_quick_reply_with_image() -> None:
    m = parse_message(
        {"to": TO, "text": "?", "quick_replies": [{"title": "Red", "payload": "R", "image": SHOP}]}
    )
    assert m.request_body()["message"]["quick_replies"] == [
        {"content_type": "text", "title": "Red", "payload": "R", "image_url": SHOP}
    ]


def test_design_examples_render_exactly() -> None:
    buttons_msg = parse_message(
        {
            "to": TO,
            "text": "How can we help you today?",
            "buttons": [
                {"title": "Visit Shop", "url": SHOP},
                {"title": "Contact Support", "postback": "CONTACT_SUPPORT"},
            ],
        }
    )
    assert buttons_msg.kind == "button_template"
    assert buttons_msg.request_body() == {
        "recipient": {"id": TO},
        "message": {
            "attachment": {
                "type": "template",
                "payload": {
                    "template_type": "button",
                    "text": "How can we help you today?",
                    "buttons": [
                        {"type": "web_url", "url": SHOP, "title": "Visit Shop"},
                        {
                            "type": "postback",
                            "title": "Contact Support",
                            "payload": "CONTACT_SUPPORT",
                        },
                    ],
                },
            }
        },
    }
    share = parse_message({"to": TO, "share": "18000000000000001"})
    assert share.content == MediaShare("18000000000000001")
    assert share.request_body()["message"] == {
        "attachment": {"type": "MEDIA_SHARE", "payload": {"id": "18000000000000001"}}
    }
    video = parse_message({"to": TO, "video": f"{SHOP}/v.mp4", "reusable": True})
    assert video.content == Attachment("video", f"{SHOP}/v.mp4", True)
    assert video.request_body()["message"] == {
        "attachment": {"type": "video", "payload": {"url": f"{SHOP}/v.mp4", "is_reusable": True}}
    }
    image = parse_message({"to": TO, "image": f"{SHOP}/i.png"})
    assert image.request_body()["message"]["attachment"]["payload"]["is_reusable"] is False


def test_generic_template_model() -> None:
    m = parse_message(
        {
            "to": int(TO),  # YAML reads an unquoted id as a number
            "cards": [
                {
                    "title": "T",
                    "subtitle": "S",
                    "image": f"{SHOP}/a.jpg",
                    "url": SHOP,
                    "buttons": buttons(3),
                },
                *cards(9),
            ],
        }
    )
    assert m.to == TO
    assert isinstance(m.content, GenericTemplate) and len(m.content.cards) == 10
    first = m.content.cards[0]
    assert first == Card(
        "T",
        "S",
        f"{SHOP}/a.jpg",
        SHOP,
        tuple(Button(f"B{i}", payload=f"P{i}") for i in range(3)),
    )


def test_private_reply_is_text_to_a_comment() -> None:
    m = parse_message({"comment": "18010000000000001", "text": "Check your DMs"})
    assert m.is_private_reply
    assert m.request_body() == {
        "recipient": {"comment_id": "18010000000000001"},
        "message": {"text": "Check your DMs"},
    }


def test_flags() -> None:
    m = message_from_flags(to=TO, text="Hi", quick_replies=["Yes=YES", "No=NO=really"])
    assert isinstance(m.content, Text)
    assert m.content.quick_replies == (QuickReply("Yes", "YES"), QuickReply("No", "NO=really"))
    assert message_from_flags(to=TO, audio=f"{SHOP}/a.mp3", reusable=True).content == Attachment(
        "audio", f"{SHOP}/a.mp3", True
    )
    with pytest.raises(InvalidInput) as info:
        message_from_flags(to=TO, text="Hi", quick_replies=["nopayload"])
    assert info.value.problems[0].field == "--quick-reply[0]"
    with pytest.raises(InvalidInput) as info:
        message_from_flags(to="abc", text="Hi")
    assert info.value.problems[0].file == "command line"
    assert info.value.problems[0].field == "to"


# --- every rule refused, with field and rule -------------------------------------------------

REFUSALS: list[tuple[str, Any, str | None, str]] = [
    ("not a mapping", ["to"], None, "must be a mapping"),
    ("unknown key", {"to": TO, "text": "x", "txet": "y"}, "txet", "unknown key"),
    ("neither to nor comment", {"text": "x"}, "to", "exactly one of to"),
    ("both to and comment", {"to": TO, "comment": "1", "text": "x"}, "to", "exactly one of to"),
    ("recipient not digits", {"to": "12a4", "text": "x"}, "to", "digits only"),
    ("recipient negative", {"to": -5, "text": "x"}, "to", "digits only"),
    ("recipient boolean", {"to": True, "text": "x"}, "to", "digits only"),
    ("recipient unicode digits", {"to": "١٢٣", "text": "x"}, "to", "digits only"),
    ("recipient too long", {"to": "1" * 33, "text": "x"}, "to", "longer than"),
    ("comment not digits", {"comment": "18_01", "text": "x"}, "comment", "digits only"),
    ("text over 1,000 bytes", {"to": TO, "text": "é" * 501}, "text", "1,002 bytes"),
    ("text empty", {"to": TO, "text": "  "}, "text", "must not be empty"),
    ("text not text", {"to": TO, "text": 5}, "text", "must be text"),
    ("nothing to send", {"to": TO}, "text", "is required"),
    ("two kinds", {"to": TO, "image": SHOP, "video": SHOP}, "video", "one kind"),
    ("text with an image", {"to": TO, "text": "x", "image": SHOP}, "text", "does not go with"),
    ("reusable without media", {"to": TO, "text": "x", "reusable": True}, "reusable", "only goes"),
    ("reusable not boolean", {"to": TO, "image": SHOP, "reusable": "yes"}, "reusable", "true or"),
    (
        "button template text > 640",
        {"to": TO, "text": "x" * 641, "buttons": buttons(1)},
        "text",
        "limit is 640",
    ),
    ("buttons without text", {"to": TO, "buttons": buttons(1)}, "text", "required with buttons"),
    ("no buttons", {"to": TO, "text": "x", "buttons": []}, "buttons", "takes 1-3"),
    ("four buttons", {"to": TO, "text": "x", "buttons": buttons(4)}, "buttons", "4 buttons"),
    ("buttons not a list", {"to": TO, "text": "x", "buttons": "B"}, "buttons", "must be a list"),
    (
        "button url and postback",
        {"to": TO, "text": "x", "buttons": [{"title": "B", "url": SHOP, "postback": "P"}]},
        "buttons[0]",
        "exactly one of url",
    ),
    (
        "button neither",
        {"to": TO, "text": "x", "buttons": [{"title": "B"}]},
        "buttons[0]",
        "exactly one of url",
    ),
    (
        "button http url",
        {"to": TO, "text": "x", "buttons": [{"title": "B", "url": "http://a.io"}]},
        "buttons[0].url",
        "only https",
    ),
    (
        "button title > 20",
        {"to": TO, "text": "x", "buttons": [{"title": "t" * 21, "postback": "P"}]},
        "buttons[0].title",
        "limit is 20",
    ),
    (
        "button payload > 1,000",
        {"to": TO, "text": "x", "buttons": [{"title": "B", "postback": "p" * 1001}]},
        "buttons[0].postback",
        "limit is 1000",
    ),
    (
        "button unknown key",
        {"to": TO, "text": "x", "buttons": [{"title": "B", "postback": "P", "type": "web_url"}]},
        "buttons[0].type",
        "unknown key",
    ),
    ("eleven cards", {"to": TO, "cards": cards(11)}, "cards", "11 cards"),
    ("no cards", {"to": TO, "cards": []}, "cards", "takes 1-10"),
    (
        "card without title",
        {"to": TO, "cards": [{"subtitle": "S"}]},
        "cards[0].title",
        "must be text",
    ),
    (
        "card title > 80",
        {"to": TO, "cards": [{"title": "t" * 81}]},
        "cards[0].title",
        "limit is 80",
    ),
    (
        "card subtitle > 80",
        {"to": TO, "cards": [{"title": "t", "subtitle": "s" * 81}]},
        "cards[0].subtitle",
        "limit is 80",
    ),
    (
        "card four buttons",
        {"to": TO, "cards": [{"title": "t", "buttons": buttons(4)}]},
        "cards[0].buttons",
        "4 buttons",
    ),
    (
        "card image not https",
        {"to": TO, "cards": [{"title": "t", "image": "ftp://a.io/x.jpg"}]},
        "cards[0].image",
        "only https",
    ),
    (
        "card unknown key",
        {"to": TO, "cards": [{"title": "t", "image_url": SHOP}]},
        "cards[0].image_url",
        "unknown key",
    ),
    ("cards with text", {"to": TO, "text": "x", "cards": cards(1)}, "text", "does not go with"),
    (
        "fourteen quick replies",
        {"to": TO, "text": "x", "quick_replies": replies(14)},
        "quick_replies",
        "14 replies",
    ),
    (
        "quick reply title > 20",
        {"to": TO, "text": "x", "quick_replies": [{"title": "t" * 21, "payload": "P"}]},
        "quick_replies[0].title",
        "limit is 20",
    ),
    (
        "quick reply payload > 1,000",
        {"to": TO, "text": "x", "quick_replies": [{"title": "t", "payload": "p" * 1001}]},
        "quick_replies[0].payload",
        "limit is 1000",
    ),
    (
        "quick reply without payload",
        {"to": TO, "text": "x", "quick_replies": [{"title": "t"}]},
        "quick_replies[0].payload",
        "must be text",
    ),
    (
        "quick reply image http",
        {
            "to": TO,
            "text": "x",
            "quick_replies": [{"title": "t", "payload": "p", "image": "http://a.io/i.png"}],
        },
        "quick_replies[0].image",
        "only https",
    ),
    (
        "quick replies with an image",
        {"to": TO, "image": SHOP, "quick_replies": replies(1)},
        "quick_replies",
        "only go with a plain text",
    ),
    ("share not digits", {"to": TO, "share": "abc"}, "share", "digits only"),
    (
        "private reply with a template",
        {"comment": "1", "text": "x", "buttons": buttons(1)},
        "comment",
        "private reply is a text",
    ),
    (
        "private reply with quick replies",
        {"comment": "1", "text": "x", "quick_replies": replies(1)},
        "quick_replies",
        "without quick replies",
    ),
    (
        "image with credentials",
        {"to": TO, "image": "https://u:p@cdn.example.com/a.jpg"},
        "image",
        "user name or password",
    ),
    (
        "image bad port",
        {"to": TO, "image": "https://cdn.example.com:99999/a.jpg"},
        "image",
        "not a valid URL",
    ),
    (
        "image port zero",
        {"to": TO, "image": "https://cdn.example.com:0/a.jpg"},
        "image",
        "port must be",
    ),
    (
        "image with a space",
        {"to": TO, "image": "https://cdn.example.com/a b.jpg"},
        "image",
        "spaces or control",
    ),
    ("image without host", {"to": TO, "image": "https:///a.jpg"}, "image", "no host"),
    ("image local host", {"to": TO, "image": "https://intranet/a.jpg"}, "image", "public domain"),
    ("image not text", {"to": TO, "image": 42}, "image", "must be an https URL"),
]


@pytest.mark.parametrize(
    ("data", "field", "fragment"), [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS]
)
def test_refused_with_field_and_rule(data: Any, field: str | None, fragment: str) -> None:
    refused(data, field, fragment)


def test_every_problem_is_reported_at_once() -> None:
    found = problems(
        {"to": "x1", "text": "é" * 600, "quick_replies": [{"title": "t" * 30, "payload": ""}]}
    )
    fields = [f for f, _ in found]
    assert fields == ["to", "text", "quick_replies[0].title", "quick_replies[0].payload"]


def test_url_problem_accepts_ordinary_https() -> None:
    assert url_problem("https://cdn.example.com:8443/a.jpg?x=1") is None
    assert url_problem("https://203.0.113.7/a.jpg") is None
    assert url_problem("https://" + "a" * 2000 + ".com") == "the URL is longer than 2000 characters"


# --- message files ---------------------------------------------------------------------------


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "message.yaml"
    path.write_text(text, encoding="utf-8")
    return path


DESIGN_EXAMPLES = {
    "button_template": """
to: "1234567890"                 # an IGSID; or comment: "<comment id>" for a private reply
text: How can we help you today?
buttons:                         # button template: 1-3 buttons, text <= 640
  - {title: Visit Shop, url: https://shop.example.com}
  - {title: Contact Support, postback: CONTACT_SUPPORT}
""",
    "generic_template": """
to: "1234567890"
cards:                           # generic template: 1-10 cards
  - title: Summer Collection     # <= 80
    subtitle: New arrivals       # <= 80
    image: https://example.com/summer.jpg
    url: https://shop.example.com/summer      # the card's default action
    buttons: [{title: Shop Now, url: https://shop.example.com/summer}]
""",
    "text": """
to: "1234567890"
text: What's your favourite colour?
quick_replies: [{title: Red, payload: COLOR_RED}, {title: Blue, payload: COLOR_BLUE}]
""",
    "attachment": """
to: "1234567890"
video: https://cdn.example.com/clip.mp4
reusable: true
""",
}


@pytest.mark.parametrize("kind", sorted(DESIGN_EXAMPLES))
def test_message_file_forms(tmp_path: Path, kind: str) -> None:
    m = load_message_file(write(tmp_path, DESIGN_EXAMPLES[kind]), LIMIT)
    assert isinstance(m, OutboundMessage)
    assert (m.to, m.kind) == ("1234567890", kind)


@pytest.mark.parametrize(
    ("text", "field", "fragment"),
    [
        ("to: '1'\ntext: hi\nbuttonz: []\n", "buttonz", "unknown key"),
        ("to: '1'\ntext: hi\ntext: again\n", None, "written twice"),
        ("to: '1'\ntext: a: b\n", None, "not valid YAML"),
        ("- to: '1'\n", None, "must be a mapping"),
        ("", None, "must be a mapping"),
        ("to: '1'\ncards:\n  - title: " + "x" * 81 + "\n", "cards[0].title", "limit is 80"),
    ],
)
def test_message_file_problems_name_file_and_field(
    tmp_path: Path, text: str, field: str | None, fragment: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(InvalidInput) as info:
        load_message_file(path, LIMIT)
    found = info.value.problems
    assert all(p.file == str(path) for p in found)
    assert any(p.field == field and fragment in p.message for p in found), found
    assert str(path) in str(info.value)


def test_message_file_unreadable_or_too_big(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput) as info:
        load_message_file(tmp_path, LIMIT)
    assert "folder" in str(info.value)
    with pytest.raises(InvalidInput) as info:
        load_message_file(write(tmp_path, "to: '1'\ntext: " + "x" * 100 + "\n"), limit=50)
    assert "limit is 50 bytes" in str(info.value)
    with pytest.raises(InvalidInput):
        load_message_file(tmp_path / "missing.yaml", LIMIT)
