"""Forwarding stored events to other services (n8n, …): one normalised JSON body per event,
signed with `X-Igsched-Signature-256: sha256=<hex HMAC-SHA256 of the body>`, retried with
capped exponential backoff until the receiver answers 2xx (at least once).

The daemon keeps the delivery state (attempts, next try) in the database; this module holds
the pieces without state: the body, the schedule and one delivery attempt.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import httpx

from scheduler.engage.events import WebhookEvent
from scheduler.engage.webhook_auth import sign
from scheduler.tls import tls_context

FORWARD_SIGNATURE_HEADER = "X-Igsched-Signature-256"
USER_AGENT = "igsched-forward/1"


def event_document(
    event: WebhookEvent,
    *,
    event_id: int | str,
    account: str | None,
    received_at: datetime,
    handled_at: datetime | None = None,
) -> dict[str, Any]:
    """What is forwarded for one stored event: the fields `igsched events --json` shows
    (`account` is the configured name, else the raw ig id), plus the ig id, the echo flag,
    the recipient, attachments and Meta's item as received."""
    return {
        "id": event_id,
        "account": account if account is not None else event.ig_account_id,
        "kind": event.kind,
        "sender_id": event.sender_id,
        "text": event.text,
        "payload": event.payload,
        "media_id": event.media_id,
        "comment_id": event.comment_id,
        "timestamp": event.timestamp.isoformat() if event.timestamp else None,
        "received_at": received_at.isoformat(),
        "handled_at": handled_at.isoformat() if handled_at else None,
        "ig_account_id": event.ig_account_id,
        "recipient_id": event.recipient_id,
        "parent_id": event.parent_id,
        "username": event.username,
        "is_echo": event.is_echo,
        "attachments": [dict(a) for a in event.attachments],
        "raw": json.loads(event.raw) if event.raw else None,
    }


def encode_document(document: Mapping[str, Any]) -> bytes:
    """The exact bytes that are signed and sent (stable: keys sorted, no spaces)."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def retry_delay_s(attempt: int, base_s: float, cap_s: float) -> float:
    """Wait after the `attempt`-th failed delivery (1-based): base, 2·base, 4·base … ≤ cap."""
    if attempt < 1:
        raise ValueError("attempt counts from 1")
    return min(cap_s, base_s * 2 ** min(attempt - 1, 62))


@dataclass(frozen=True)
class DeliveryOutcome:
    """One attempt. `error` is short and safe to store: no URL, no secret, no body."""

    delivered: bool
    status: int | None
    error: str | None
    duration_s: float


async def deliver(
    url: str,
    secret: str,
    document: Mapping[str, Any],
    *,
    client: httpx.AsyncClient | None = None,
    timeout_s: float = 10.0,
) -> DeliveryOutcome:
    """POST one event document, signed; delivered only on a 2xx answer. Redirects are not
    followed (a redirect could lead the event off to an unchecked URL)."""
    body = encode_document(document)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        FORWARD_SIGNATURE_HEADER: sign(secret, body),
    }
    started = time.perf_counter()
    own = client is None
    http = client or httpx.AsyncClient(timeout=timeout_s, follow_redirects=False, verify=tls_context())
    try:
        resp = await http.post(url, content=body, headers=headers, timeout=timeout_s)
    except httpx.TimeoutException:
        return DeliveryOutcome(False, None, "timed out", time.perf_counter() - started)
    except httpx.HTTPError as e:
        return DeliveryOutcome(False, None, f"{type(e).__name__}: no answer",
                               time.perf_counter() - started)
    finally:
        if own:
            await http.aclose()
    elapsed = time.perf_counter() - started
    if 200 <= resp.status_code < 300:
        return DeliveryOutcome(True, resp.status_code, None, elapsed)
    return DeliveryOutcome(False, resp.status_code, f"HTTP {resp.status_code}", elapsed)


def target_id(url: str) -> str:
    """How the database names a forwarding target: a digest of its URL, because the URL's
    path is often a secret of its own (n8n's webhook ids) and rows must not hold secrets."""
    return hashlib.sha256(url.encode()).hexdigest()[:16]


def target_host(url: str) -> str:
    """Scheme and host of a target, for people reading the deliveries."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"
