"""Pure pieces of the webhook commands and forwarding: which fields to subscribe, the sample
event of send-test, how a forwarding target is named in the database."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from scheduler.commands.webhooks import TEST_SENDER, sample_body, subscription_fields
from scheduler.config import settings_from_dict
from scheduler.engage.events import normalise, parse_body
from scheduler.engage.forwarding import target_host, target_id

ACCOUNT = {"name": "shop", "ig_user_id": "17841400000000001", "token_env": "T"}
HOOKS = {"listen": "127.0.0.1:8788", "app_secret_env": "S", "verify_token_env": "V"}


def _settings(**extra: Any) -> Any:
    return settings_from_dict({"accounts": [ACCOUNT], **extra}, "test")


def test_subscription_fields_follow_the_rules_unless_events_are_forwarded() -> None:
    everything = ["comments", "live_comments", "mentions", "messages", "messaging_optins", "messaging_postbacks"]
    assert subscription_fields(_settings()) == everything  # no rule: every kind is stored and listed
    rules = [{"name": "a", "on": "postback", "message": "hi"}, {"name": "b", "on": "quick_reply", "message": "ok"}]
    assert subscription_fields(_settings(rules=rules)) == ["messages", "messaging_postbacks"]
    forwarding = {**HOOKS, "forward": [{"url": "https://n8n.example.com/webhook/x", "secret_env": "F"}]}
    assert subscription_fields(_settings(rules=rules, webhooks=forwarding)) == everything


def test_the_sample_event_is_an_echo_the_receiver_accepts() -> None:
    raw = sample_body("17841400000000001", datetime(2026, 11, 30, 12, 0, tzinfo=UTC))
    [event] = normalise(parse_body(raw)).events
    assert (event.kind, event.is_echo, event.recipient_id) == ("message", True, TEST_SENDER)
    assert event.ig_account_id == "17841400000000001" and "send-test" in (event.text or "")
    assert sample_body("1", datetime.now(UTC)) != sample_body("1", datetime.now(UTC))  # a new mid each time
    assert json.loads(raw)["object"] == "instagram"


def test_a_target_is_stored_by_digest_and_host_never_by_its_secret_path() -> None:
    url = "https://n8n.example.com/webhook/5f1c-secret-id"
    assert len(target_id(url)) == 16 and "secret" not in target_id(url)
    assert target_id(url) == target_id(url) != target_id(url + "x")
    assert target_host(url) == "https://n8n.example.com"
    assert target_host("http://127.0.0.1:8080/hook") == "http://127.0.0.1:8080"
