"""Forwarding one stored event to a local HTTP service: the signed body, what counts as
delivered, and failures described without URL or secret."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import socket
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from scheduler.engage.events import normalise
from scheduler.engage.forwarding import (
    FORWARD_SIGNATURE_HEADER,
    deliver,
    encode_document,
    event_document,
    retry_delay_s,
)
from tests.webhook_support import RelayTarget

SECRET = "forward-secret"
ACCT = "17841400000000001"
RECEIVED = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


@pytest.fixture
def target() -> Iterator[RelayTarget]:
    with RelayTarget() as running:
        yield running


def _document() -> dict[str, object]:
    body = {"object": "instagram", "entry": [{"id": ACCT, "time": 1764500000, "changes": [
        {"field": "comments", "value": {"id": "18010000000000001", "text": "sale?",
                                        "from": {"id": "42", "username": "fan"},
                                        "media": {"id": "18000000000000001"}}}]}]}
    [event] = normalise(body).events
    return event_document(event, event_id=7, account="shop", received_at=RECEIVED)


def test_the_document_has_the_events_listing_fields() -> None:
    doc = _document()
    assert {"id", "account", "kind", "sender_id", "text", "payload", "media_id", "comment_id",
            "timestamp", "received_at", "handled_at"} <= set(doc)
    assert (doc["id"], doc["account"], doc["kind"], doc["comment_id"], doc["received_at"]) == (
        7, "shop", "comment", "18010000000000001", "2026-11-30T12:00:00+00:00")
    assert doc["raw"] == {"field": "comments", "value": {
        "id": "18010000000000001", "text": "sale?", "from": {"id": "42", "username": "fan"},
        "media": {"id": "18000000000000001"}}}
    [event] = normalise({"object": "instagram", "entry": [{"id": "999", "changes": [
        {"field": "mentions", "value": {"media_id": "1"}}]}]}).events
    unknown = event_document(event, event_id=8, account=None, received_at=RECEIVED)
    assert unknown["account"] == "999"  # not configured: the raw ig id


def test_delivered_once_signed_over_the_exact_bytes(target: RelayTarget) -> None:
    doc = _document()
    outcome = asyncio.run(deliver(target.url, SECRET, doc))
    assert (outcome.delivered, outcome.status, outcome.error) == (True, 200, None)
    [(headers, body)] = target.received
    assert body == encode_document(doc)
    expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert headers[FORWARD_SIGNATURE_HEADER] == expected
    assert headers["Content-Type"] == "application/json"
    assert json.loads(body)["id"] == 7


@pytest.mark.parametrize("status", [400, 404, 500, 503, 302])
def test_anything_but_2xx_is_not_delivered(target: RelayTarget, status: int) -> None:
    target.answers = [status]
    outcome = asyncio.run(deliver(target.url, SECRET, _document()))
    assert (outcome.delivered, outcome.status, outcome.error) == (False, status, f"HTTP {status}")
    assert len(target.received) == 1  # a redirect is not followed


def test_down_then_up_delivers_on_a_later_try(target: RelayTarget) -> None:
    target.answers = [503, 502]
    outcomes = [asyncio.run(deliver(target.url, SECRET, _document())) for _ in range(3)]
    assert [o.delivered for o in outcomes] == [False, False, True]


def test_no_listener_and_timeouts_are_failures_without_the_url(target: RelayTarget) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    nobody = f"http://127.0.0.1:{port}/hook/secret-path"
    outcome = asyncio.run(deliver(nobody, SECRET, _document()))
    assert not outcome.delivered and outcome.status is None
    assert outcome.error is not None and "secret-path" not in outcome.error
    assert SECRET not in outcome.error
    target.delay_s = 1.0
    slow = asyncio.run(deliver(target.url, SECRET, _document(), timeout_s=0.2))
    assert (slow.delivered, slow.error) == (False, "timed out")


def test_retry_schedule_doubles_up_to_the_cap() -> None:
    assert [retry_delay_s(n, 2.0, 900.0) for n in range(1, 12)] == [
        2, 4, 8, 16, 32, 64, 128, 256, 512, 900, 900]
    assert retry_delay_s(10_000, 2.0, 900.0) == 900.0
    with pytest.raises(ValueError):
        retry_delay_s(0, 2.0, 900.0)
