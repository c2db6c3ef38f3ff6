"""Webhook signatures and the normalisation of Meta's bodies (facts §8 shapes), hostile ones
included."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from scheduler.engage.events import (
    MAX_DEPTH,
    PayloadRefused,
    normalise,
    parse_body,
)
from scheduler.engage.webhook_auth import SignatureRefused, parse_signature, sign, verify

SECRET = "app-secret-for-tests"
ACCT = "17841400000000001"
PERSON = "9000000000000042"


def _messaging(item: dict[str, Any], account: str = ACCT) -> dict[str, Any]:
    return {"object": "instagram", "entry": [{"id": account, "time": 1764500000123,
                                              "messaging": [item]}]}


def _change(field: str, value: dict[str, Any]) -> dict[str, Any]:
    return {"object": "instagram",
            "entry": [{"id": ACCT, "time": 1764500000, "changes": [{"field": field, "value": value}]}]}


def _msg(**message: Any) -> dict[str, Any]:
    return {"sender": {"id": PERSON}, "recipient": {"id": ACCT}, "timestamp": 1764500000456,
            "message": {"mid": "m_1", **message}}


# ------------------------------------------------------------------ signatures
def test_signature_round_trip_matches_an_independent_hmac() -> None:
    body = b'{"object":"instagram","entry":[]}'
    expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert sign(SECRET, body) == expected
    verify(SECRET, body, expected)
    verify(SECRET, body, expected.upper().replace("SHA256=", "sha256="))  # hex case is free


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (None, "no signature header"),
        ("", "no signature header"),
        ("sha1=" + "0" * 40, "malformed"),
        ("sha256=" + "0" * 63, "malformed"),
        ("sha256=" + "g" * 64, "malformed"),
        ("sha256=" + "0" * 64 + ",sha256=" + "0" * 64, "malformed"),
        ("sha256=" + "0" * 64, "does not match"),
    ],
)
def test_bad_signatures_are_refused_with_a_reason(header: str | None, reason: str) -> None:
    with pytest.raises(SignatureRefused) as e:
        verify(SECRET, b"{}", header)
    assert reason in e.value.reason
    assert SECRET not in e.value.reason


def test_the_same_object_serialised_otherwise_does_not_verify() -> None:
    body = b'{"object":"instagram","entry":[]}'
    again = json.dumps(json.loads(body)).encode()  # spaces after separators
    assert again != body
    with pytest.raises(SignatureRefused):
        verify(SECRET, again, sign(SECRET, body))


def test_an_empty_secret_verifies_nothing() -> None:
    with pytest.raises(SignatureRefused):
        verify("", b"{}", sign("", b"{}"))


def test_parse_signature_gives_the_digest() -> None:
    assert parse_signature("sha256=" + "ab" * 32) == bytes.fromhex("ab" * 32)


# ------------------------------------------------------------------ normalisation
def test_a_text_message_with_attachments() -> None:
    attachments = [{"type": "image", "payload": {"url": "https://cdn.example/x.jpg"}}]
    out = normalise(_messaging(_msg(text="Hello", attachments=attachments)))
    assert out.skipped == []
    [e] = out.events
    assert (e.kind, e.ig_account_id, e.sender_id, e.recipient_id, e.text) == (
        "message", ACCT, PERSON, ACCT, "Hello")
    assert e.dedup_key == f"{ACCT}:message:m_1"
    assert e.timestamp == datetime.fromtimestamp(1764500000.456, UTC)
    assert e.attachments[0]["type"] == "image"
    assert json.loads(e.raw)["message"]["mid"] == "m_1"
    assert not e.is_echo


def test_an_echo_is_flagged() -> None:
    item = {"sender": {"id": ACCT}, "recipient": {"id": PERSON}, "timestamp": 1,
            "message": {"mid": "m_echo", "text": "our answer", "is_echo": True}}
    [e] = normalise(_messaging(item)).events
    assert e.is_echo and e.kind == "message"
    assert (e.sender_id, e.recipient_id) == (ACCT, PERSON)


def test_quick_reply_postback_and_optin() -> None:
    body = {"object": "instagram", "entry": [
        {"id": ACCT, "time": 1, "messaging": [
            _msg(text="Red", quick_reply={"payload": "COLOR_RED"}),
            {"sender": {"id": PERSON}, "recipient": {"id": ACCT}, "timestamp": 2,
             "postback": {"mid": "m_pb", "title": "Contact", "payload": "CONTACT_SUPPORT"}},
            {"sender": {"id": PERSON}, "recipient": {"id": ACCT}, "timestamp": 3,
             "optin": {"ref": "newsletter"}},
        ]}]}
    qr, pb, opt = normalise(body).events
    assert (qr.kind, qr.text, qr.payload) == ("quick_reply", "Red", "COLOR_RED")
    assert (pb.kind, pb.text, pb.payload, pb.dedup_key) == (
        "postback", "Contact", "CONTACT_SUPPORT", f"{ACCT}:postback:m_pb")
    assert (opt.kind, opt.payload, opt.sender_id) == ("optin", "newsletter", PERSON)
    # no id from Meta: a hash of the item, the same when the item comes again
    assert opt.dedup_key.startswith(f"{ACCT}:optin:sha256-")
    assert normalise(body).events[2].dedup_key == opt.dedup_key


def test_comments_live_comments_and_mentions() -> None:
    value = {"from": {"id": PERSON, "username": "fan"}, "id": "18010000000000001",
             "parent_id": "18010000000000000", "text": "Is there a SALE?",
             "media": {"id": "18000000000000001", "media_product_type": "FEED"}}
    [c] = normalise(_change("comments", value)).events
    assert (c.kind, c.sender_id, c.username, c.comment_id, c.parent_id, c.media_id, c.text) == (
        "comment", PERSON, "fan", "18010000000000001", "18010000000000000",
        "18000000000000001", "Is there a SALE?")
    assert c.dedup_key == f"{ACCT}:comment:18010000000000001"
    assert c.timestamp == datetime.fromtimestamp(1764500000, UTC)
    [live] = normalise(_change("live_comments", value)).events
    assert live.kind == "comment"
    [m] = normalise(_change("mentions", {"comment_id": "17", "media_id": "18"})).events
    assert (m.kind, m.comment_id, m.media_id, m.sender_id) == ("mention", "17", "18", None)
    [cap] = normalise(_change("mentions", {"media_id": "18"})).events
    assert cap.comment_id is None and cap.dedup_key == f"{ACCT}:mention:media-18"


def test_the_same_id_for_two_accounts_is_two_events() -> None:
    a = normalise(_messaging(_msg(text="x"), account="1")).events[0]
    b = normalise(_messaging(_msg(text="x"), account="2")).events[0]
    assert a.dedup_key != b.dedup_key


def test_ids_may_be_numbers() -> None:
    body = _change("comments", {"id": 18010000000000001, "from": {"id": 42}, "text": "x"})
    [c] = normalise(body).events
    assert (c.comment_id, c.sender_id) == ("18010000000000001", "42")


def test_other_objects_and_fields_are_skipped_not_refused() -> None:
    out = normalise({"object": "user", "entry": [{"id": "1"}]})
    assert out.events == [] and "not instagram" in out.skipped[0].reason
    out = normalise(_change("story_insights", {"media_id": "1"}))
    assert out.events == [] and "'story_insights' is not handled" in out.skipped[0].reason
    read = {"sender": {"id": PERSON}, "recipient": {"id": ACCT}, "read": {"mid": "m_1"}}
    out = normalise(_messaging(read))
    assert out.events == [] and "read" in out.skipped[0].reason


@pytest.mark.parametrize(
    ("body", "where", "fragment"),
    [
        (_messaging(_msg(text=5)), "entry[0].messaging[0]", "'message.text' must be a string"),
        (_messaging(_msg(is_echo="yes")), "entry[0].messaging[0]", "true or false"),
        (_messaging(_msg(attachments={"a": 1})), "entry[0].messaging[0]", "list of objects"),
        (_messaging({**_msg(), "sender": "x"}), "entry[0].messaging[0]", "'sender' must be an object"),
        (_messaging({**_msg(), "sender": {"id": True}}), "entry[0].messaging[0]", "string id"),
        (_messaging({**_msg(), "sender": {"id": "a b"}}), "entry[0].messaging[0]", "not a valid id"),
        (_messaging({**_msg(), "sender": {"id": "9" * 600}}), "entry[0].messaging[0]", "not a valid id"),
        (_messaging({**_msg(), "timestamp": "soon"}), "entry[0].messaging[0]", "usable time"),
        (_messaging({**_msg(), "timestamp": 10**30}), "entry[0].messaging[0]", "usable time"),
        (_messaging({**_msg(), "message": [1]}), "entry[0].messaging[0]", "must be an object"),
        (_messaging("hello"), "entry[0].messaging[0]", "must be an object"),
        (_change("comments", {"text": "no id"}), "entry[0].changes[0]", "'value.id' is missing"),
        (_change("mentions", {}), "entry[0].changes[0]", "comment_id or value.media_id"),
        ({"object": "instagram", "entry": [{"id": ACCT, "changes": [{"field": 1}]}]},
         "entry[0].changes[0]", "'field' must be a string"),
        ({"object": "instagram", "entry": [{"id": ACCT, "messaging": {"a": 1}}]},
         "entry[0].messaging", "must be a list"),
        ({"object": "instagram", "entry": [{"time": 1}]}, "entry[0]", "'id' is missing"),
        ({"object": "instagram", "entry": [7]}, "entry[0]", "must be an object"),
    ],
)
def test_broken_items_are_skipped_with_their_place(body: Any, where: str, fragment: str) -> None:
    out = normalise(body)
    assert out.events == []
    [skip] = out.skipped
    assert skip.where == where and fragment in skip.reason, skip


def test_one_broken_item_leaves_the_others() -> None:
    body = {"object": "instagram", "entry": [{"id": ACCT, "time": 1, "messaging": [
        _msg(text="ok"), _msg(text=["no"])]}]}
    out = normalise(body)
    assert [e.text for e in out.events] == ["ok"] and len(out.skipped) == 1


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ([], "must be a JSON object"),
        ("instagram", "must be a JSON object"),
        ({"entry": []}, "'object' must be a string"),
        ({"object": "instagram"}, "'entry' must be a list"),
        ({"object": "instagram", "entry": {}}, "'entry' must be a list"),
    ],
)
def test_a_body_of_the_wrong_shape_is_refused(body: Any, fragment: str) -> None:
    with pytest.raises(PayloadRefused, match=fragment):
        normalise(body)


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b"\xff\xfe{}", "not UTF-8"),
        (b'{"object": ', "not JSON"),
        (b'{"a": NaN}', "NaN"),
        (b"[" * 200_000 + b"]" * 200_000, "nested deeper"),
        (b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1), "nested deeper"),
        (b'{"a":' * 500 + b"1" + b"}" * 500, "nested deeper"),
    ],
)
def test_hostile_bodies_are_refused_cleanly(raw: bytes, fragment: str) -> None:
    with pytest.raises(PayloadRefused, match=fragment):
        parse_body(raw)


def test_a_body_at_the_depth_limit_parses() -> None:
    raw = b"[" * MAX_DEPTH + b"]" * MAX_DEPTH
    assert parse_body(raw) is not None


def test_as_json_is_json() -> None:
    [e] = normalise(_messaging(_msg(text="Hi"))).events
    doc = json.loads(json.dumps(e.as_json()))
    assert doc["kind"] == "message" and doc["raw"]["message"]["text"] == "Hi"
