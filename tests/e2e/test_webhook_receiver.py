"""The webhook receiver over real HTTP, fed by hand-made requests and by the emulator's
signed deliveries; the sink is in memory (storage comes with the events table)."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from scheduler.emulator import RunningEmulator
from tests.webhook_support import SECRET, VERIFY, MemorySink, RunningReceiver

ACCT = "17841400000000001"


@pytest.fixture
def rx() -> Iterator[RunningReceiver]:
    with RunningReceiver() as running:
        yield running


def _sink(rx: RunningReceiver) -> MemorySink:
    assert isinstance(rx.sink, MemorySink)
    return rx.sink


def _body(text: str = "hello", mid: str = "m_1") -> bytes:
    doc = {"object": "instagram", "entry": [{"id": ACCT, "time": 1764500000000, "messaging": [
        {"sender": {"id": "42"}, "recipient": {"id": ACCT}, "timestamp": 1764500000000,
         "message": {"mid": mid, "text": text}}]}]}
    return json.dumps(doc, separators=(",", ":")).encode()


def _sig(body: bytes, secret: str = SECRET) -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"X-Hub-Signature-256": f"sha256={digest}", "Content-Type": "application/json"}


def test_handshake_echoes_the_challenge_only_for_the_right_token(rx: RunningReceiver) -> None:
    ok = httpx.get(rx.url, params={"hub.mode": "subscribe", "hub.verify_token": VERIFY,
                                   "hub.challenge": "1158201444"})
    assert (ok.status_code, ok.text) == (200, "1158201444")
    assert ok.headers["content-type"].startswith("text/plain")
    for params in ({"hub.mode": "subscribe", "hub.verify_token": "nope", "hub.challenge": "1"},
                   {"hub.mode": "unsubscribe", "hub.verify_token": VERIFY, "hub.challenge": "1"},
                   {"hub.challenge": "1"}):
        bad = httpx.get(rx.url, params=params)
        assert bad.status_code == 403 and "1" not in bad.text
    weird = httpx.get(rx.url, params={"hub.mode": "subscribe", "hub.verify_token": VERIFY,
                                      "hub.challenge": "<script>"})
    assert weird.status_code == 400


def test_a_valid_signature_is_accepted_and_the_events_handed_over(rx: RunningReceiver) -> None:
    body = _body("Is the blue one in stock?")
    r = httpx.post(rx.url, content=body, headers=_sig(body))
    assert r.status_code == 200
    [event] = _sink(rx).events
    assert (event.kind, event.sender_id, event.text, event.ig_account_id) == (
        "message", "42", "Is the blue one in stock?", ACCT)
    assert rx.receiver.stats.accepted_bodies == 1 and rx.receiver.stats.events == 1


@pytest.mark.parametrize("case", ["wrong", "missing", "reserialised", "malformed", "other-secret"])
def test_bad_signatures_are_refused_and_nothing_handed_over(
    rx: RunningReceiver, case: str, caplog: pytest.LogCaptureFixture
) -> None:
    body = _body()
    headers = _sig(body)
    content = body
    if case == "wrong":
        headers["X-Hub-Signature-256"] = "sha256=" + "0" * 64
    elif case == "missing":
        del headers["X-Hub-Signature-256"]
    elif case == "reserialised":  # the same object, other bytes
        content = json.dumps(json.loads(body), indent=1).encode()
    elif case == "malformed":
        headers["X-Hub-Signature-256"] = "sha1=abc"
    else:
        headers = _sig(body, "another-secret")
    with caplog.at_level(logging.WARNING, logger="scheduler.engage.receiver"):
        r = httpx.post(rx.url, content=content, headers=headers)
    assert r.status_code == 403
    assert _sink(rx).events == []
    assert rx.receiver.stats.refused == {"403": 1}
    assert SECRET not in caplog.text and "refused (403)" in caplog.text


def test_refusals_are_logged_once_per_source(
    rx: RunningReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="scheduler.engage.receiver"):
        for _ in range(5):
            httpx.post(rx.url, content=b"{}", headers={"X-Hub-Signature-256": "sha256=" + "1" * 64})
    assert caplog.text.count("refused (403)") == 1
    assert rx.receiver.stats.refused == {"403": 5}


def test_invalid_json_under_a_valid_signature_is_400(rx: RunningReceiver) -> None:
    for body in (b'{"object": "instagram", "entry": [', b'["not", "an", "object"]',
                 b"[" * 100_000 + b"]" * 100_000):
        r = httpx.post(rx.url, content=body, headers=_sig(body))
        assert r.status_code == 400, body[:20]
    assert _sink(rx).events == []


def test_a_body_over_one_mib_is_413_with_or_without_a_length(rx: RunningReceiver) -> None:
    big = b'{"pad":"' + b"x" * (1024 * 1024) + b'"}'
    r = httpx.post(rx.url, content=big, headers=_sig(big))
    assert r.status_code == 413

    def chunks() -> Iterator[bytes]:  # chunked: no Content-Length to judge by
        for _ in range(40):
            yield b"x" * 65536

    r = httpx.post(rx.url, content=chunks(), headers=_sig(b"irrelevant"))
    assert r.status_code == 413
    assert _sink(rx).events == []
    assert rx.receiver.stats.refused == {"413": 2}


def test_the_limit_is_enforced_while_reading(rx: RunningReceiver) -> None:
    """A sender that claims no length and keeps sending is cut off after the limit, not
    buffered: the answer arrives while it still has megabytes to send."""
    host, port = rx.url.split("//")[1].split("/")[0].split(":")
    head = (f"POST /webhooks/instagram HTTP/1.1\r\nHost: {host}\r\n"
            "Transfer-Encoding: chunked\r\nX-Hub-Signature-256: sha256=" + "0" * 64 + "\r\n\r\n")
    chunk = b"10000\r\n" + b"x" * 0x10000 + b"\r\n"
    sent = 0
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(head.encode())
        try:
            for _ in range(64 * 16):  # up to 64 MiB
                s.sendall(chunk)
                sent += len(chunk)
        except OSError:
            pass  # the receiver closed the connection: it stopped reading
        answer = s.recv(200)
    assert sent < 8 * 1024 * 1024
    assert answer.startswith(b"HTTP/1.1 413")


def test_a_sink_that_fails_answers_500_so_meta_retries(rx: RunningReceiver) -> None:
    _sink(rx).fail_next = True
    body = _body()
    assert httpx.post(rx.url, content=body, headers=_sig(body)).status_code == 500
    assert httpx.post(rx.url, content=body, headers=_sig(body)).status_code == 200
    assert len(_sink(rx).events) == 1


def test_items_of_other_shapes_are_skipped_and_the_body_accepted(rx: RunningReceiver) -> None:
    doc: dict[str, Any] = json.loads(_body())
    doc["entry"][0]["messaging"].append({"sender": {"id": "42"}, "read": {"mid": "m_0"}})
    body = json.dumps(doc).encode()
    assert httpx.post(rx.url, content=body, headers=_sig(body)).status_code == 200
    assert len(_sink(rx).events) == 1 and rx.receiver.stats.skipped_items == 1


def test_only_get_and_post_on_the_path(rx: RunningReceiver) -> None:
    assert httpx.put(rx.url, content=b"{}").status_code == 405
    assert httpx.get(rx.url.replace("/instagram", "/other")).status_code == 404


# ------------------------------------------------------------------ fed by the emulator
@pytest.fixture
def emu_and_rx(rx: RunningReceiver) -> Iterator[tuple[RunningEmulator, RunningReceiver]]:
    with RunningEmulator() as emu:
        httpx.post(f"{emu.base_url}/_emulator/webhooks", json={"url": rx.url, "app_secret": SECRET})
        yield emu, rx


def _published_media(emu: RunningEmulator) -> str:
    emu.state.add_account(ACCT, username="shop", token="t0k")
    cid = httpx.post(f"{emu.base_url}/v23.0/{ACCT}/media",
                     data={"image_url": "https://cdn.example/a.jpg", "access_token": "t0k"}).json()["id"]
    emu.state.advance(5)
    media_id: str = httpx.post(f"{emu.base_url}/v23.0/{ACCT}/media_publish",
                               data={"creation_id": cid, "access_token": "t0k"}).json()["id"]
    return media_id


def _deliver(emu: RunningEmulator, **body: Any) -> dict[str, Any]:
    r = httpx.post(f"{emu.base_url}/_emulator/webhooks/deliver", json=body, timeout=30)
    assert r.status_code == 200, r.text
    result: dict[str, Any] = r.json()
    return result


def test_emulator_batches_delivered_three_times_hand_over_the_same_keys(
    emu_and_rx: tuple[RunningEmulator, RunningReceiver],
) -> None:
    emu, rx = emu_and_rx
    published = _published_media(emu)
    events = [
        {"kind": "message", "account": ACCT, "sender_id": "42", "text": "Hi there"},
        {"kind": "postback", "account": ACCT, "sender_id": "42", "title": "Help",
         "payload": "CONTACT_SUPPORT"},
        {"kind": "quick_reply", "account": ACCT, "sender_id": "42", "text": "Red",
         "payload": "COLOR_RED"},
        {"kind": "comment", "account": ACCT, "sender_id": "43", "media_id": published,
         "text": "sale?", "username": "fan"},
        {"kind": "optin", "account": ACCT, "sender_id": "44", "ref": "newsletter"},
        {"kind": "mention", "account": ACCT, "media_id": "18", "comment_id": "17"},
    ]
    result = _deliver(emu, events=events, repeat=3)
    assert [d["status"] for d in result["deliveries"]] == [200, 200, 200]
    got = _sink(rx).events
    assert len(got) == 18  # the sink de-duplicates; the receiver hands over what came
    keys = [e.dedup_key for e in got]
    assert keys[:6] == keys[6:12] == keys[12:]
    assert [e.kind for e in got[:6]] == ["message", "postback", "quick_reply", "comment",
                                          "optin", "mention"]
    message, postback, _, comment, _, _ = got[:6]
    assert (message.sender_id, message.text) == ("42", "Hi there")
    assert (postback.sender_id, postback.text, postback.payload) == ("42", "Help", "CONTACT_SUPPORT")
    # the comment exists on the emulator, so rule actions can reply to it and hide it
    comment_id = result["events"][3]["comment_id"]
    assert comment.comment_id == comment_id and comment.media_id == published
    assert [c["id"] for c in emu.state.comments(published)] == [comment_id]


def test_emulator_one_body_per_event_and_bad_signatures(
    emu_and_rx: tuple[RunningEmulator, RunningReceiver],
) -> None:
    emu, rx = emu_and_rx
    events = [{"kind": "message", "account": ACCT, "text": f"m{i}"} for i in range(4)]
    result = _deliver(emu, events=events, batch=False)
    assert [d["status"] for d in result["deliveries"]] == [200] * 4
    assert len(_sink(rx).batches) == 4
    for mode in ("wrong", "missing"):
        result = _deliver(emu, events=events[:1], signature=mode)
        assert [d["status"] for d in result["deliveries"]] == [403]
    assert len(_sink(rx).events) == 4


def test_emulator_webhook_control_refuses_bad_requests(emulator: RunningEmulator) -> None:
    base = f"{emulator.base_url}/_emulator/webhooks"
    assert httpx.post(f"{base}/deliver", json={"events": [{"kind": "message"}]}).status_code == 400
    httpx.post(base, json={"url": "http://127.0.0.1:9/x", "app_secret": "s"})
    snapshot = httpx.get(base).json()
    assert snapshot == {"url": "http://127.0.0.1:9/x", "app_secret_set": True}  # never the secret
    for events in ([], [{"kind": "like", "account": "1"}], [{"kind": "comment", "account": "1"}],
                   [{"kind": "message", "account": "1", "colour": "red"}]):
        assert httpx.post(f"{base}/deliver", json={"events": events}).status_code == 400
    unreachable = httpx.post(f"{base}/deliver",
                             json={"events": [{"kind": "message", "account": "1"}]}).json()
    assert unreachable["deliveries"][0]["status"] is None


def test_a_receiver_from_settings_reads_its_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    from scheduler.config import SecretMissing, settings_from_dict
    from scheduler.engage.receiver import receiver_from_settings

    s = settings_from_dict({"webhooks": {"listen": "127.0.0.1:0", "path": "/hook",
                                         "app_secret_env": "IGS_T_APP", "verify_token_env": "IGS_T_VERIFY"}}, "t")
    monkeypatch.delenv("IGS_T_APP", raising=False)
    monkeypatch.setenv("IGS_T_VERIFY", "verify-value")
    with pytest.raises(SecretMissing, match="IGS_T_APP"):
        receiver_from_settings(s.webhooks, MemorySink())
    monkeypatch.setenv("IGS_T_APP", "app-secret-value")
    receiver = receiver_from_settings(s.webhooks, MemorySink())
    assert receiver.config.path == "/hook" and receiver.config.app_secret == "app-secret-value"
    assert "secret-value" not in repr(receiver.config) and "verify-value" not in repr(receiver.config)


def test_emulator_bad_options_add_no_comment(emulator: RunningEmulator) -> None:
    media = _published_media(emulator)
    r = httpx.post(f"{emulator.base_url}/_emulator/webhooks/deliver", json={
        "url": "http://127.0.0.1:9/", "app_secret": "s", "repeat": 0,
        "events": [{"kind": "comment", "account": ACCT, "media_id": media, "text": "x"}]})
    assert r.status_code == 400 and emulator.state.comments(media) == []
