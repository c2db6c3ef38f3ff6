"""Notifications over real HTTP to a local receiver, and to real commands."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from scheduler.config import NotificationSettings, NotifyTarget, settings_from_dict
from scheduler.service.notify import (
    SIGNATURE_HEADER,
    Attempt,
    Notification,
    Notifier,
    OutcomeState,
    is_late,
    judge,
    occurrence_key,
    retry_delay_s,
    secret_env_names,
    signature_valid,
    target_id,
    targets_for,
)

NOW = datetime(2026, 3, 1, 9, 0, 5)
SECRET = "notify-signing-secret"
SETTINGS = NotificationSettings()


def _note(**kw: Any) -> Notification:
    base: dict[str, Any] = {
        "event": "post_failed",
        "at": NOW,
        "account": "shop",
        "key": "spring-teaser",
        "state": "failed",
        "reason": "36003: aspect ratio — token IGAAabcdefghijklmnopqrstuvwxyz0123 leaked",
        "permalink": None,
    }
    base.update(kw)
    return Notification(**base)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@asynccontextmanager
async def receiver(handler: Handler) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_post("/hook", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}/hook"
    finally:
        await runner.cleanup()


def test_body_has_the_contract_fields_and_is_redacted() -> None:
    doc = json.loads(_note().body())
    assert list(doc) == ["event", "at", "account", "key", "state", "reason", "permalink"]
    assert doc["at"] == "2026-03-01T09:00:05+00:00"
    assert "IGAAabcdef" not in doc["reason"] and "[redacted]" in doc["reason"]
    assert "—" in doc["reason"]  # UTF-8, not escaped
    assert occurrence_key("token_expiring", "shop", "2026-04-01", 7) == (
        "token_expiring:shop:2026-04-01:7"
    )


def test_signed_post_is_delivered_once_to_a_local_receiver(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("IGSCHED_NOTIFY_SECRET", SECRET)
    got: list[tuple[bytes, str | None]] = []

    async def hook(request: web.Request) -> web.Response:
        got.append((await request.read(), request.headers.get(SIGNATURE_HEADER)))
        return web.Response(status=204)

    async def main() -> Any:
        async with receiver(hook) as url:
            target = NotifyTarget(url=url, secret_env="IGSCHED_NOTIFY_SECRET")
            notifier = Notifier(SETTINGS)
            try:
                return await notifier.attempt(
                    target, _note().body(), attempts_before=0, created_at=NOW, now=NOW
                )
            finally:
                await notifier.aclose()

    outcome = asyncio.run(main())
    assert outcome.state is OutcomeState.DELIVERED and outcome.attempts == 1
    assert len(got) == 1
    body, sig = got[0]
    assert body == _note().body()
    assert signature_valid(body, SECRET.encode(), sig)
    assert not signature_valid(body, b"other", sig) and not signature_valid(body, b"x", None)


def test_failures_are_retried_with_backoff_and_given_up_in_the_end(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("S", SECRET)
    calls: list[int] = []

    async def failing(request: web.Request) -> web.Response:
        calls.append(1)
        return web.Response(status=503, text="busy\x1b[31m " + "x" * 500)

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound("https://elsewhere.example.com/")

    async def main() -> list[Any]:
        notifier = Notifier(SETTINGS)
        out = []
        try:
            async with receiver(failing) as url:
                target = NotifyTarget(url=url, secret_env="S")
                out.append(await notifier.attempt(target, b"{}", attempts_before=0,
                                                  created_at=NOW, now=NOW))
                late = NOW + timedelta(seconds=SETTINGS.give_up_after_s)
                out.append(await notifier.attempt(target, b"{}", attempts_before=9,
                                                  created_at=NOW, now=late))
            async with receiver(redirect) as url:
                out.append(await notifier.deliver(NotifyTarget(url=url), b"{}"))
            # the receiver is gone now: connection refused
            out.append(await notifier.deliver(NotifyTarget(url=url), b"{}"))
            monkeypatch.delenv("S")
            out.append(await notifier.deliver(NotifyTarget(url=url, secret_env="S"), b"{}"))
        finally:
            await notifier.aclose()
        return out

    retry, gave_up, redirected, refused, no_secret = asyncio.run(main())
    assert retry.state is OutcomeState.RETRY and retry.attempts == 1
    assert retry.next_attempt_at == NOW + timedelta(seconds=SETTINGS.retry_base_s)
    assert retry.detail.startswith("HTTP 503: busy\\x1b[31m") and len(retry.detail) < 160
    assert gave_up.state is OutcomeState.GAVE_UP and gave_up.next_attempt_at is None
    assert len(calls) == 2
    assert not redirected.delivered and redirected.detail.startswith("HTTP 302")
    assert not refused.delivered and "Connect" in refused.detail
    assert not no_secret.delivered and "variable S is not set" in no_secret.detail


def test_backoff_schedule_is_pure_and_capped() -> None:
    assert [retry_delay_s(n, SETTINGS) for n in (1, 2, 3)] == [30.0, 60.0, 120.0]
    assert retry_delay_s(20, SETTINGS) == SETTINGS.retry_cap_s
    ok = judge(Attempt(True, "HTTP 200"), 3, NOW, NOW, SETTINGS)
    assert ok.state is OutcomeState.DELIVERED and ok.attempts == 4
    assert is_late(NOW, NOW + timedelta(seconds=301), SETTINGS)
    assert not is_late(NOW, NOW + timedelta(seconds=300), SETTINGS)


def test_targets_by_event_and_yaml_on_key() -> None:
    settings = settings_from_dict(
        {
            "accounts": [{"name": "shop", "ig_user_id": "1", "token_env": "IGSCHED_TOKEN_SHOP"}],
            "notify": [
                {"url": "https://hooks.example.com/x", "secret_env": "N", True: ["post_late"]},
                {"command": ["/bin/true"]},
            ],
        },
        "config.yaml",
    )
    hook, cmd = settings.notify
    assert targets_for("post_late", settings.notify) == [hook, cmd]
    assert targets_for("post_failed", settings.notify) == [cmd]
    assert target_id(hook) != target_id(cmd) and len(target_id(hook)) == 16
    assert secret_env_names(settings) == {"IGSCHED_TOKEN_SHOP", "N"}
    assert hook.label() == "https://hooks.example.com/x"


def _py(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_command_gets_the_json_on_stdin_without_secret_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IGSCHED_TOKEN_SHOP", "IGAA-very-secret-token-value")
    out = tmp_path / "got.json"
    env_out = tmp_path / "env.json"
    code = (
        "import sys, os, json; "
        f"open({str(out)!r}, 'wb').write(sys.stdin.buffer.read()); "
        f"json.dump(dict(os.environ), open({str(env_out)!r}, 'w'))"
    )
    target = NotifyTarget(command=_py(code))

    async def main() -> Any:
        notifier = Notifier(SETTINGS, drop_env={"IGSCHED_TOKEN_SHOP"})
        try:
            return await notifier.attempt(target, _note().body(), attempts_before=0,
                                          created_at=NOW, now=NOW)
        finally:
            await notifier.aclose()

    outcome = asyncio.run(main())
    assert outcome.state is OutcomeState.DELIVERED
    assert out.read_bytes() == _note().body()
    env = json.loads(env_out.read_text())
    assert "IGSCHED_TOKEN_SHOP" not in env and env["IGSCHED_EVENT"] == "post_failed"


def test_command_failure_output_is_a_short_escaped_redacted_excerpt() -> None:
    noisy = (
        "import sys; sys.stdin.read(); "
        "print('oops\\r\\nline2 token=IGAAabcdefghijklmnopqrstuvwxyz0123 ' + 'y' * 9000); "
        "sys.exit(3)"
    )

    async def main() -> Any:
        notifier = Notifier(SETTINGS)
        try:
            return [
                await notifier.deliver(NotifyTarget(command=_py(noisy)), b"{}"),
                await notifier.deliver(NotifyTarget(command=["/nonexistent/page-me"]), b"{}"),
                await notifier.deliver(NotifyTarget(command=_py("import sys; sys.exit(0)")),
                                       b"x" * 300_000),  # never reads its stdin
            ]
        finally:
            await notifier.aclose()

    failed, missing, ignores_stdin = asyncio.run(main())
    assert not failed.delivered and failed.detail.startswith("exit 3: oops\\r\\nline2")
    assert "IGAAabcdef" not in failed.detail and len(failed.detail) < 160
    assert not missing.delivered and "cannot start" in missing.detail
    assert ignores_stdin.delivered


def test_command_timeout_kills_it(tmp_path: Path) -> None:
    marker = tmp_path / "survived"
    code = f"import time; time.sleep(1.5); open({str(marker)!r}, 'w')"
    target = NotifyTarget(command=_py(code), timeout_s=0.3)

    async def main() -> Any:
        notifier = Notifier(SETTINGS)
        try:
            return await notifier.deliver(target, b"{}")
        finally:
            await notifier.aclose()

    started = time.monotonic()
    result = asyncio.run(main())
    assert not result.delivered and "killed" in result.detail
    assert time.monotonic() - started < 1.4
    time.sleep(1.5)
    assert not marker.exists()
    assert os.environ.get("IGSCHED_EVENT") is None
