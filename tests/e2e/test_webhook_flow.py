"""End to end over real HTTP, on SQLite and PostgreSQL: the emulator delivers signed webhook
batches to the daemon's receiver (`igsched run` with webhooks.listen), the events are stored
once, the rules' actions are run once against the emulator, the events are forwarded to a
local service, and the commands (`events`, `webhooks subscribe`, `webhooks send-test`) work."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import socket
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from click.testing import CliRunner

from scheduler.cli import main
from scheduler.config import Settings
from scheduler.emulator import RunningEmulator
from scheduler.graph import GraphClient
from scheduler.store import Store
from tests.helpers import settings_for
from tests.kinds_support import BRAND2_ID, SHOP_ID, TOKENS, add_accounts
from tests.webhook_support import DaemonThread, RelayTarget

APP_SECRET = "e2e-app-secret-0123"
VERIFY = "e2e-verify-token"
FORWARD_SECRET = "e2e-forward-secret-4567"
RULES = [{"name": "sale-code", "on": "comment", "match": "sale|discount",
          "private_reply": "Here's 20 % off: SAVE20", "reply": "Check your DMs", "hide": True}]


@pytest.fixture(autouse=True)
def _secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IGSCHED_TEST_APP_SECRET", APP_SECRET)
    monkeypatch.setenv("IGSCHED_TEST_VERIFY_TOKEN", VERIFY)
    monkeypatch.setenv("IGSCHED_TEST_FORWARD_SECRET", FORWARD_SECRET)
    monkeypatch.setenv("IGSCHED_TEST_TOKEN_SHOP", TOKENS["shop"])
    monkeypatch.setenv("IGSCHED_TEST_TOKEN_BRAND2", TOKENS["brand2"])


@pytest.fixture
def emu(emulator: RunningEmulator) -> RunningEmulator:
    add_accounts(emulator)
    return emulator


def webhook_settings(db_url: str, emu: RunningEmulator, *, forward: list[str] = (),  # type: ignore[assignment]
                     rules: list[dict[str, Any]] = RULES, listen: str = "127.0.0.1:0") -> Settings:
    hooks: dict[str, Any] = {
        "listen": listen, "verify_token_env": "IGSCHED_TEST_VERIFY_TOKEN",
        "app_secret_env": "IGSCHED_TEST_APP_SECRET",
        "forward": [{"url": u, "secret_env": "IGSCHED_TEST_FORWARD_SECRET"} for u in forward],
        "forward_backoff_base_s": 0.1, "forward_backoff_cap_s": 0.4,
    }
    return settings_for(db_url, emu.base_url, webhooks=hooks, rules=rules,
                        daemon={"identity": "test-daemon", "tick_s": 0.5, "lease_s": 5})


def publish_media(emu: RunningEmulator) -> str:
    async def go() -> str:
        async with GraphClient(emu.base_url, "v23.0", 10.0) as client:
            cid = await client.create_container(SHOP_ID, TOKENS["shop"], {"image_url": "https://cdn.example.com/a.jpg"})
            emu.state.advance(5)
            return await client.publish(SHOP_ID, TOKENS["shop"], cid)

    return asyncio.run(go())


def deliver(emu: RunningEmulator, url: str, events: list[dict[str, Any]], **options: Any) -> dict[str, Any]:
    resp = httpx.post(f"{emu.base_url}/_emulator/webhooks/deliver", timeout=60,
                      json={"url": url, "app_secret": APP_SECRET, "events": events, **options})
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def graph_calls(emu: RunningEmulator, endpoint: str) -> list[dict[str, Any]]:
    return [r for r in emu.state.requests if r["endpoint"] == endpoint and r["method"] == "POST"]


def test_a_batch_delivered_three_times_is_stored_once_and_acted_on_once(db_url: str, emu: RunningEmulator) -> None:
    media = publish_media(emu)
    store = Store(db_url)
    with DaemonThread(webhook_settings(db_url, emu), store) as d:
        out = deliver(emu, d.url, [{"kind": "comment", "account": SHOP_ID, "media_id": media,
                                    "text": "Is there a SALE today?", "sender_id": "7001"}], repeat=3)
        assert [r["status"] for r in out["deliveries"]] == [200, 200, 200]
        comment_id = out["events"][0]["comment_id"]
        d.wait_for(lambda: _all_finished(store, 3))
    [event] = store.webhook_events()
    assert (event.kind, event.comment_id, event.sender_id, event.rule_actions) == ("comment", comment_id, "7001", 3)
    assert event.handled_at is not None
    # Meta saw exactly one public reply, one private reply and one hide, in that order
    replies, dms, hides = graph_calls(emu, "replies"), graph_calls(emu, "messages"), graph_calls(emu, "comment")
    assert (len(replies), len(dms), len(hides)) == (1, 1, 1)
    assert hides[0]["t"] > max(replies[0]["t"], dms[0]["t"])
    assert emu.state.get_comment(comment_id).hidden is True
    actions = store.list_actions()
    assert sorted(a.key for a in actions) == sorted(
        f"rule:sale-code:{event.id}:{k}" for k in ("reply", "private_reply", "hide"))
    assert {a.state for a in actions} == {"done"} and {a.source for a in actions} == {"rule:sale-code"}


def _all_finished(store: Store, n: int) -> bool:
    acts = store.list_actions()
    return len(acts) == n and all(a.state in ("done", "failed", "unknown") for a in acts)


def test_a_message_and_a_postback_are_stored_with_sender_text_and_payload(db_url: str, emu: RunningEmulator) -> None:
    store = Store(db_url)
    with DaemonThread(webhook_settings(db_url, emu), store) as d:
        out = deliver(emu, d.url, [
            {"kind": "message", "account": SHOP_ID, "sender_id": "7002", "text": "Is the blue one in stock?"},
            {"kind": "postback", "account": SHOP_ID, "sender_id": "7002", "title": "Contact us",
             "payload": "CONTACT_SUPPORT"},
            {"kind": "message", "account": SHOP_ID, "sender_id": "7002", "text": "our answer", "is_echo": True},
        ])
        assert [r["status"] for r in out["deliveries"]] == [200]
        d.wait_for(lambda: store.webhook_event_counts() == (3, 0))
    by_text = {e.text: e for e in store.webhook_events()}
    msg, postback, echo = by_text["Is the blue one in stock?"], by_text["Contact us"], by_text["our answer"]
    assert (msg.kind, msg.account, msg.sender_id, msg.payload) == ("message", "shop", "7002", None)
    assert (postback.kind, postback.sender_id, postback.payload) == ("postback", "7002", "CONTACT_SUPPORT")
    assert echo.is_echo and echo.sender_id == SHOP_ID
    assert store.last_inbound_at(SHOP_ID, "7002") is not None
    assert store.last_inbound_at(SHOP_ID, SHOP_ID) is None  # the echo is the account's own


def test_a_comment_that_matches_no_rule_triggers_nothing(db_url: str, emu: RunningEmulator) -> None:
    media = publish_media(emu)
    store = Store(db_url)
    with DaemonThread(webhook_settings(db_url, emu), store) as d:
        deliver(emu, d.url, [{"kind": "comment", "account": SHOP_ID, "media_id": media, "text": "lovely colours"}])
        d.wait_for(lambda: store.webhook_event_counts() == (1, 0))
    [event] = store.webhook_events()
    assert event.rule_actions == 0
    assert store.list_actions() == []
    assert graph_calls(emu, "replies") == graph_calls(emu, "messages") == graph_calls(emu, "comment") == []


def _verify_forwarded(received: list[tuple[dict[str, str], bytes]]) -> list[dict[str, Any]]:
    docs = []
    for headers, body in received:
        expected = "sha256=" + hmac.new(FORWARD_SECRET.encode(), body, hashlib.sha256).hexdigest()
        assert headers["X-Igsched-Signature-256"] == expected
        docs.append(json.loads(body))
    return docs


def test_forwarding_delivers_each_event_once_signed_and_in_order(db_url: str, emu: RunningEmulator) -> None:
    with RelayTarget() as relay:
        store = Store(db_url)
        with DaemonThread(webhook_settings(db_url, emu, forward=[relay.url], rules=[]), store) as d:
            texts = [f"message {i}" for i in range(6)]
            deliver(emu, d.url, [{"kind": "message", "account": SHOP_ID, "sender_id": "7003", "text": t}
                                 for t in texts], repeat=2)
            d.wait_for(lambda: len(relay.received) >= 6)
            d.wait_for(lambda: all(x["delivered_at"] for e in store.webhook_events() for x in store.deliveries(e.id)))
        docs = _verify_forwarded(relay.received)
    assert [doc["text"] for doc in docs] == texts  # once each, in order
    assert {doc["account"] for doc in docs} == {"shop"} and {doc["kind"] for doc in docs} == {"message"}
    assert [doc["id"] for doc in docs] == sorted(e.id for e in store.webhook_events())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_forwarding_catches_up_after_the_receiver_was_down(db_url: str, emu: RunningEmulator) -> None:
    port = _free_port()
    url = f"http://127.0.0.1:{port}/hook/abc"
    store = Store(db_url)
    with DaemonThread(webhook_settings(db_url, emu, forward=[url], rules=[]), store) as d:
        deliver(emu, d.url, [{"kind": "message", "account": SHOP_ID, "sender_id": "7004", "text": f"early {i}"}
                             for i in range(3)])
        # nothing listens: attempts fail and are recorded, with backoff
        d.wait_for(lambda: any(x["attempts"] >= 2 for e in store.webhook_events() for x in store.deliveries(e.id)))
        first = store.webhook_events()[-1]
        [row] = store.deliveries(first.id)
        assert row["delivered_at"] is None and "no answer" in row["last_error"]
        deliver(emu, d.url, [{"kind": "message", "account": SHOP_ID, "sender_id": "7004", "text": "while down"}])
        with RelayTarget(port=port) as relay:
            d.wait_for(lambda: len(relay.received) >= 4)
            d.wait_for(lambda: all(x["delivered_at"] for e in store.webhook_events() for x in store.deliveries(e.id)))
            docs = _verify_forwarded(relay.received)
    assert [doc["text"] for doc in docs] == ["early 0", "early 1", "early 2", "while down"]


# ---------------------------------------------------------------------- commands
def write_config(tmp: Path, settings: Settings) -> Path:
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(settings.model_dump(mode="json", exclude_defaults=True, by_alias=True)))
    return path


def cli(config: Path, *args: str) -> tuple[int, str, str]:
    r = CliRunner().invoke(main, ["--config", str(config), *args], catch_exceptions=False)
    return r.exit_code, r.stdout, r.stderr


def test_events_json_lists_newest_first_with_filters(db_url: str, emu: RunningEmulator, tmp_path: Path) -> None:
    media = publish_media(emu)
    settings = webhook_settings(db_url, emu, rules=[])
    store = Store(db_url)
    with DaemonThread(settings, store) as d:
        deliver(emu, d.url, [{"kind": "message", "account": SHOP_ID, "sender_id": "7005", "text": "first"},
                             {"kind": "comment", "account": SHOP_ID, "media_id": media, "text": "second"},
                             {"kind": "quick_reply", "account": SHOP_ID, "sender_id": "7005", "payload": "COLOR_RED"}])
        d.wait_for(lambda: store.webhook_event_counts() == (3, 0))
    config = write_config(tmp_path, settings)
    code, out, _ = cli(config, "events", "--json")
    assert code == 0
    rows = json.loads(out)
    assert [r["kind"] for r in rows] == ["quick_reply", "comment", "message"]
    first = rows[-1]
    assert set(first) >= {"id", "account", "kind", "sender_id", "text", "payload", "media_id", "comment_id",
                          "timestamp", "received_at", "handled_at"}
    assert (first["account"], first["sender_id"], first["text"]) == ("shop", "7005", "first")
    assert rows[0]["payload"] == "COLOR_RED" and rows[1]["media_id"] == media
    code, out, _ = cli(config, "events", "--json", "--kind", "comment", "--account", "shop")
    assert [r["text"] for r in json.loads(out)] == ["second"]
    code, out, _ = cli(config, "events", "--json", "--since", "2999-01-01")
    assert json.loads(out) == []
    code, _, err = cli(config, "events", "--account", "nobody")
    assert code == 2 and "nobody" in err
    code, out, _ = cli(config, "events")
    assert code == 0 and "COLOR_RED" in out


def test_webhooks_subscribe_asks_meta_for_the_fields_rules_and_forwarding_need(
    db_url: str, emu: RunningEmulator, tmp_path: Path
) -> None:
    config = write_config(tmp_path, webhook_settings(db_url, emu))
    code, out, err = cli(config, "webhooks", "subscribe", "--account", "shop")
    assert code == 0, err
    assert emu.state.subscribed_fields(SHOP_ID) == ["comments", "live_comments"]  # the rules act on comments
    assert "shop: subscribed to comments, live_comments" in out
    with_forward = write_config(tmp_path, webhook_settings(db_url, emu, forward=["https://n8n.example.com/webhook/x"]))
    code, out, err = cli(with_forward, "webhooks", "subscribe")
    assert code == 0, err
    assert emu.state.subscribed_fields(SHOP_ID) == [
        "comments", "live_comments", "mentions", "messages", "messaging_optins", "messaging_postbacks"]
    assert emu.state.subscribed_fields(BRAND2_ID) == emu.state.subscribed_fields(SHOP_ID)
    assert len(graph_calls(emu, "subscribed_apps")) == 3  # shop, then both accounts


def test_send_test_checks_the_whole_path(db_url: str, emu: RunningEmulator, tmp_path: Path) -> None:
    with RelayTarget() as relay:
        port = _free_port()
        settings = webhook_settings(db_url, emu, forward=[relay.url], listen=f"127.0.0.1:{port}")
        config = write_config(tmp_path, settings)
        store = Store(db_url)
        with DaemonThread(settings, store) as d:
            code, out, err = cli(config, "webhooks", "send-test")
            assert code == 0, err
            assert "answered 200, stored as event" in out and "queued for 1 forwarding target" in out
            d.wait_for(lambda: len(relay.received) == 1)
        [doc] = _verify_forwarded(relay.received)
    [event] = store.webhook_events()
    assert event.is_echo and doc["is_echo"] and doc["id"] == event.id
    assert store.list_actions() == []  # a test event never triggers a rule
    code, _, err = cli(config, "webhooks", "send-test")  # the daemon is gone
    assert code == 1 and "no answer" in err


def test_a_postback_rule_messages_the_sender_once(db_url: str, emu: RunningEmulator) -> None:
    emu.state.add_person("7006", name="Ada", username="ada")
    rules = [{"name": "contact", "on": "postback", "match": "^CONTACT_SUPPORT$", "message": "We'll be in touch."}]
    store = Store(db_url)
    with DaemonThread(webhook_settings(db_url, emu, rules=rules), store) as d:
        deliver(emu, d.url, [{"kind": "postback", "account": SHOP_ID, "sender_id": "7006", "title": "Contact",
                              "payload": "CONTACT_SUPPORT"},
                             {"kind": "postback", "account": SHOP_ID, "sender_id": "7006", "title": "Other",
                              "payload": "SOMETHING_ELSE"}], repeat=2)
        d.wait_for(lambda: _all_finished(store, 1))
    [action] = store.list_actions()
    assert (action.kind, action.target, action.state, action.source) == ("message", "7006", "done", "rule:contact")
    [call] = graph_calls(emu, "messages")
    assert call["body"]["recipient"] == {"id": "7006"} and call["body"]["message"]["text"] == "We'll be in touch."
