"""Planned messages in queue files (README "Engagement"): parsed beside posts, every problem
named with the file, the entry and the field, all or nothing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from scheduler.engage.actions import queued_message_action
from scheduler.engage.messages import ButtonTemplate, Text
from scheduler.problems import InvalidInput
from scheduler.queuefile import parse_queue_document
from tests.unit.test_queuefile import HEAD, NOW, SETTINGS


def doc(text: str):  # type: ignore[no-untyped-def]
    return parse_queue_document(HEAD + text, "q.yaml", SETTINGS, NOW)


def problems(text: str) -> list[str]:
    with pytest.raises(InvalidInput) as e:
        doc(text)
    return [str(p) for p in e.value.problems]


def test_messages_beside_posts() -> None:
    d = doc(
        "posts:\n  - {key: p, at: 2026-06-02 09:00, image: https://cdn.example.com/a.jpg}\n"
        "messages:\n"
        "  - {key: dm, at: 2026-06-02 09:00, to: '123', text: Hi}\n"
        "  - at: now\n    to: '123'\n    text: Pick\n    buttons: [{title: Go, url: https://x.example.com}]\n"
        "  - {key: pr, at: 2026-06-02 10:00, comment: '1789', text: Thanks, account: shop}\n"
    )
    assert [p.key for p in d.posts] == ["p"]
    dm, buttons, pr = d.messages
    assert (dm.key, dm.account, dm.at, dm.message.to) == ("dm", "shop", datetime(2026, 6, 2, 7, 0, tzinfo=UTC), "123")
    assert isinstance(dm.message.content, Text)
    assert buttons.at is None and isinstance(buttons.message.content, ButtonTemplate)
    assert buttons.key.startswith("m-")  # derived from the content: a re-import adds nothing
    assert buttons.key == doc("messages:\n  - at: now\n    to: '123'\n    text: Pick\n"
                              "    buttons: [{title: Go, url: https://x.example.com}]\n").messages[0].key
    action = queued_message_action(pr)
    assert (action.kind, action.target, action.payload, action.source) == (
        "private_reply", "1789", {"text": "Thanks"}, "queue:q.yaml")
    assert queued_message_action(dm).payload == {"message": {"text": "Hi"}}


def test_a_file_with_only_messages() -> None:
    assert len(doc("messages:\n  - {at: now, to: '1', text: x}\n").messages) == 1


def test_every_problem_is_named_and_nothing_is_returned() -> None:
    found = problems(
        "posts:\n  - {key: p, at: 2026-06-02 09:00, image: https://cdn.example.com/a.jpg}\n"
        "messages:\n"
        "  - {key: a, at: 2026-06-02 09:00, to: '1', comment: '2', text: x}\n"
        "  - {key: b, at: 2020-01-01 09:00, to: '1', text: x}\n"
        "  - {key: c, to: '1', text: x}\n"
        "  - {key: d, at: now, to: '1', text: x, colour: red}\n"
        "  - {key: 'bad key', at: now, to: '1', text: x}\n"
        "  - just text\n"
    )
    expected = [
        "q.yaml: message 1 (key a): field 'to': give exactly one of to",
        "q.yaml: message 2 (key b): field 'at':",
        "q.yaml: message 3 (key c): field 'at': at is missing",
        "q.yaml: message 4 (key d): field 'colour': unknown key 'colour'",
        "q.yaml: message 5: field 'key': key 'bad key' has characters that are not allowed",
        "q.yaml: message 6: a message must be a mapping",
    ]
    for want in expected:
        assert any(p.startswith(want) for p in found), (want, found)


@pytest.mark.parametrize("value", ["[]", "{to: '1'}", "text"])
def test_messages_must_be_a_non_empty_list(value: str) -> None:
    assert any("field 'messages': messages must be a non-empty list" in p for p in problems(f"messages: {value}\n"))
