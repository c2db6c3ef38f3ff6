"""Rule matching: which actions an event asks for, with their keys, in their order."""

from __future__ import annotations

from typing import Any

from scheduler.config import RuleSettings, settings_from_dict
from scheduler.engage.events import WebhookEvent
from scheduler.engage.rules import account_names, plan_actions, rule_matches

ACCT = "17841400000000001"
ACCOUNTS = [{"name": "shop", "ig_user_id": ACCT, "token_env": "T"},
            {"name": "blog", "ig_user_id": "17841400000000002", "token_env": "T"}]


def _rules(*rules: dict[str, Any]) -> list[RuleSettings]:
    return settings_from_dict({"accounts": ACCOUNTS, "rules": list(rules)}, "t").rules


def _comment(text: str | None = "Any SALE today?", **kw: Any) -> WebhookEvent:
    fields: dict[str, Any] = {"kind": "comment", "ig_account_id": ACCT, "dedup_key": "k",
                              "sender_id": "42", "text": text, "comment_id": "1801",
                              "media_id": "1800"}
    fields.update(kw)
    return WebhookEvent(**fields)


SALE = {"name": "sale-code", "on": "comment", "match": "sale|discount",
        "hide": True, "private_reply": "Here's 20 % off", "reply": "Check your DMs"}


def test_a_matching_comment_gives_reply_private_reply_hide_in_that_order() -> None:
    actions = plan_actions(_rules(SALE), _comment(), 7, "shop")
    assert [(a.kind, a.key, a.source, a.target) for a in actions] == [
        ("reply", "rule:sale-code:7:reply", "rule:sale-code", "1801"),
        ("private_reply", "rule:sale-code:7:private_reply", "rule:sale-code", "1801"),
        ("hide", "rule:sale-code:7:hide", "rule:sale-code", "1801"),
    ]
    assert actions[0].payload == {"text": "Check your DMs"}
    assert actions[1].payload == {"text": "Here's 20 % off"}
    assert all(a.ig_account_id == ACCT for a in actions)


def test_no_match_no_actions() -> None:
    assert plan_actions(_rules(SALE), _comment("Lovely colours"), 1, "shop") == []
    assert plan_actions(_rules(SALE), _comment(None), 1, "shop") == []


def test_matching_is_case_insensitive_and_searches_text_or_payload() -> None:
    rule = _rules({"name": "r", "on": "postback", "match": "^contact_", "message": "Hi"})[0]
    event = WebhookEvent(kind="postback", ig_account_id=ACCT, dedup_key="k", sender_id="42",
                         text="Contact us", payload="CONTACT_SUPPORT")
    assert rule_matches(rule, event, "shop")
    [a] = plan_actions([rule], event, "9", "shop")
    assert (a.kind, a.target, a.payload, a.key) == ("message", "42", {"text": "Hi"}, "rule:r:9:message")


def test_an_echo_never_matches() -> None:
    rule = _rules({"name": "r", "on": "message", "message": "Hi"})[0]
    echo = WebhookEvent(kind="message", ig_account_id=ACCT, dedup_key="k", sender_id=ACCT,
                        recipient_id="42", text="x", is_echo=True)
    assert plan_actions([rule], echo, 1, "shop") == []
    inbound = WebhookEvent(kind="message", ig_account_id=ACCT, dedup_key="k", sender_id="42")
    assert len(plan_actions([rule], inbound, 1, "shop")) == 1  # no match: everything matches


def test_kind_account_and_media_filters() -> None:
    rule = _rules({**SALE, "account": "shop", "media": "1800"})[0]
    assert rule_matches(rule, _comment(), "shop")
    assert not rule_matches(rule, _comment(), "blog")
    assert not rule_matches(rule, _comment(), None)  # an account not configured
    assert not rule_matches(rule, _comment(media_id="1799"), "shop")
    assert not rule_matches(rule, _comment(kind="mention"), "shop")
    anywhere = _rules(SALE)[0]
    assert rule_matches(anywhere, _comment(), None)


def test_several_rules_in_configuration_order() -> None:
    rules = _rules({"name": "first", "on": "comment", "reply": "a"},
                   {"name": "second", "on": "comment", "match": "sale", "hide": True},
                   {"name": "third", "on": "comment", "match": "nothing", "reply": "c"})
    keys = [a.key for a in plan_actions(rules, _comment(), 3, "shop")]
    assert keys == ["rule:first:3:reply", "rule:second:3:hide"]


def test_a_mention_reply_names_the_media_and_a_caption_mention_plans_nothing() -> None:
    rule = _rules({"name": "m", "on": "mention", "reply": "Thanks!"})[0]
    in_comment = WebhookEvent(kind="mention", ig_account_id=ACCT, dedup_key="k",
                              comment_id="17", media_id="18")
    [a] = plan_actions([rule], in_comment, 5, "shop")
    assert (a.kind, a.target, a.payload) == (
        "reply", "17", {"text": "Thanks!", "mention": True, "media_id": "18"})
    in_caption = WebhookEvent(kind="mention", ig_account_id=ACCT, dedup_key="k", media_id="18")
    assert plan_actions([rule], in_caption, 5, "shop") == []


def test_account_names_by_ig_id() -> None:
    s = settings_from_dict({"accounts": ACCOUNTS}, "t")
    assert account_names(s) == {ACCT: "shop", "17841400000000002": "blog"}
