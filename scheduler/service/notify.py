"""Notifications: the JSON body, its signature, delivery to a URL or a command, and retries.

One event occurrence becomes one body; the daemon stores a row per (occurrence, target) and
calls `Notifier.attempt` for each row that is due, storing the `Outcome` it gets back. Nothing
here touches the database or blocks publishing: a delivery is bounded by the target's timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import os
import signal
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

import httpx

from scheduler import __version__
from scheduler.clock import to_aware
from scheduler.config import (
    NotificationSettings,
    NotifyEvent,
    NotifyTarget,
    Settings,
    TokenMissing,
)
from scheduler.graph.errors import redact
from scheduler.tls import tls_context

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Igsched-Signature-256"
EXCERPT_CHARS = 120
_KEEP_OUTPUT_BYTES = 4096


@dataclass(frozen=True)
class Notification:
    """What happened, as a receiver sees it (README: "Running it for months")."""

    event: NotifyEvent
    at: datetime  # when it happened (UTC)
    account: str | None = None
    key: str | None = None  # the post's or action's key
    state: str | None = None
    reason: str | None = None
    permalink: str | None = None

    def body(self) -> bytes:
        """The exact bytes sent and signed: compact JSON, UTF-8, keys in a fixed order."""
        doc = {
            "event": self.event,
            "at": to_aware(self.at).isoformat(),
            "account": self.account,
            "key": self.key,
            "state": self.state,
            "reason": redact(self.reason),
            "permalink": self.permalink,
        }
        return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def occurrence_key(event: NotifyEvent, *parts: object) -> str:
    """A stable name for one occurrence, e.g. ("post_failed", post id): stored unique, so
    every daemon that notices the same occurrence records it once."""
    return ":".join([event, *(str(p) for p in parts)])


def sign(body: bytes, secret: bytes) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def signature_valid(body: bytes, secret: bytes, header: str | None) -> bool:
    """What a receiver does with X-Igsched-Signature-256 (constant-time comparison)."""
    return header is not None and hmac.compare_digest(sign(body, secret), header)


def target_id(target: NotifyTarget) -> str:
    """A short stable id for a target (its URL or argv), for the rows that refer to it."""
    what = target.url if target.url is not None else json.dumps(target.command)
    return hashlib.sha256(what.encode("utf-8")).hexdigest()[:16]


def targets_for(event: NotifyEvent, targets: Iterable[NotifyTarget]) -> list[NotifyTarget]:
    return [t for t in targets if event in t.on]


def secret_env_names(settings: Settings) -> frozenset[str]:
    """Environment variables that hold secrets: never handed to a notification command."""
    names = {a.token_env for a in settings.accounts if a.token_env}
    names |= {t.secret_env for t in settings.notify if t.secret_env}
    return frozenset(names)


def excerpt(data: bytes | str, limit: int = EXCERPT_CHARS) -> str:
    """A short, escaped, redacted excerpt of outside output, safe for one log line."""
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    text = redact(text.strip()) or ""
    short = text[:limit]
    return repr(short)[1:-1] + ("…" if len(text) > limit else "")


@dataclass(frozen=True)
class Attempt:
    delivered: bool
    detail: str  # short, escaped; never a secret


class OutcomeState(StrEnum):
    DELIVERED = "delivered"
    RETRY = "retry"
    GAVE_UP = "gave_up"


@dataclass(frozen=True)
class Outcome:
    state: OutcomeState
    attempts: int  # including this one
    next_attempt_at: datetime | None  # RETRY only
    detail: str


def retry_delay_s(attempts: int, settings: NotificationSettings) -> float:
    """After the n-th failed attempt: base, 2·base, 4·base … capped."""
    return float(min(settings.retry_cap_s, settings.retry_base_s * 2 ** max(0, attempts - 1)))


def judge(
    attempt: Attempt,
    attempts_before: int,
    created_at: datetime,
    now: datetime,
    settings: NotificationSettings,
) -> Outcome:
    """Pure: what to store after an attempt."""
    attempts = attempts_before + 1
    if attempt.delivered:
        return Outcome(OutcomeState.DELIVERED, attempts, None, attempt.detail)
    next_at = now + timedelta(seconds=retry_delay_s(attempts, settings))
    if (next_at - created_at).total_seconds() > settings.give_up_after_s:
        return Outcome(OutcomeState.GAVE_UP, attempts, None, attempt.detail)
    return Outcome(OutcomeState.RETRY, attempts, next_at, attempt.detail)


class Notifier:
    """Delivers bodies to targets; one per daemon (it owns an HTTP connection pool)."""

    def __init__(
        self,
        settings: NotificationSettings,
        drop_env: Collection[str] = (),
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.settings = settings
        self._drop_env = frozenset(drop_env)
        self._http = httpx.AsyncClient(
            follow_redirects=False,  # a redirect would carry the signed body somewhere else
            headers={"User-Agent": f"igsched/{__version__}"},
            transport=transport,
            verify=tls_context(),
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def attempt(
        self,
        target: NotifyTarget,
        body: bytes,
        *,
        attempts_before: int,
        created_at: datetime,
        now: datetime,
    ) -> Outcome:
        """One delivery attempt of a stored notification → what to store."""
        result = await self.deliver(target, body)
        outcome = judge(result, attempts_before, created_at, now, self.settings)
        if outcome.state is OutcomeState.GAVE_UP:
            log.error("notification to %s given up after %d attempts: %s", target.label(),
                      outcome.attempts, outcome.detail)
        elif outcome.state is OutcomeState.RETRY:
            log.warning("notification to %s not delivered (attempt %d): %s", target.label(),
                        outcome.attempts, outcome.detail)
        return outcome

    async def deliver(self, target: NotifyTarget, body: bytes) -> Attempt:
        if target.url is not None:
            return await self._post(target, target.url, body)
        assert target.command is not None
        return await self._run(target.command, body, target.timeout_s, _event_of(body))

    async def _post(self, target: NotifyTarget, url: str, body: bytes) -> Attempt:
        try:
            secret = target.secret()
        except TokenMissing as e:
            return Attempt(False, str(e))
        headers = {"Content-Type": "application/json"}
        if secret is not None:
            headers[SIGNATURE_HEADER] = sign(body, secret)
        try:
            response = await self._http.post(
                url, content=body, headers=headers, timeout=target.timeout_s
            )
        except httpx.TimeoutException:
            return Attempt(False, f"no answer within {target.timeout_s:g} s")
        except httpx.HTTPError as e:
            return Attempt(False, f"{type(e).__name__}: {excerpt(str(e))}")
        status = f"HTTP {response.status_code}"
        if 200 <= response.status_code < 300:
            return Attempt(True, status)
        said = excerpt(response.content)
        return Attempt(False, f"{status}: {said}" if said else status)

    async def _run(self, argv: list[str], body: bytes, timeout_s: float, event: str) -> Attempt:
        env = {k: v for k, v in os.environ.items() if k not in self._drop_env}
        env["IGSCHED_EVENT"] = event
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                env=env,
                start_new_session=True,  # a timeout kills the command and its children
            )
        except OSError as e:
            return Attempt(False, f"cannot start {excerpt(argv[0])}: {e.strerror}")
        try:
            output, code = await asyncio.wait_for(_talk(proc, body), timeout_s)
        except TimeoutError:
            _kill_group(proc.pid)
            await proc.wait()
            return Attempt(False, f"no exit within {timeout_s:g} s (killed)")
        if code == 0:
            return Attempt(True, "exit 0")
        said = excerpt(output)
        return Attempt(False, f"exit {code}: {said}" if said else f"exit {code}")


def _event_of(body: bytes) -> str:
    try:
        doc = json.loads(body)
    except ValueError:
        return ""
    return str(doc.get("event", "")) if isinstance(doc, Mapping) else ""


async def _talk(proc: asyncio.subprocess.Process, body: bytes) -> tuple[bytes, int]:
    assert proc.stdin is not None and proc.stdout is not None
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        proc.stdin.write(body)
        await proc.stdin.drain()
    proc.stdin.close()
    kept = bytearray()
    while chunk := await proc.stdout.read(65536):  # read to the end, keep only the start
        if len(kept) < _KEEP_OUTPUT_BYTES:
            kept += chunk[: _KEEP_OUTPUT_BYTES - len(kept)]
    return bytes(kept), await proc.wait()


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def is_late(due_at: datetime, then: datetime, settings: NotificationSettings) -> bool:
    """post_late: published (or still deferred at `then`) more than late_after_s after its time."""
    return (to_aware(then) - to_aware(due_at)).total_seconds() > settings.late_after_s
