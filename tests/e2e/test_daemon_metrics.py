"""The daemon's /metrics (metrics.listen), scraped over HTTP after a real publish to the fake
Graph API and parsed with prometheus_client's own parser; SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from scheduler.clock import FakeClock, to_aware
from scheduler.daemon import Daemon
from scheduler.emulator import RunningEmulator
from scheduler.engage.webhook_auth import SIGNATURE_HEADER, sign
from scheduler.service.exporter import MetricsExporter
from scheduler.store import Store
from tests.kinds_support import SHOP_ID, by_key, enqueue_yaml, media_url
from tests.service_support import (
    close_connections,  # noqa: F401  (autouse fixture)
    run_beside,
    service_config,
    settings_of,
    wait_for,
)

OLD = "IGAAmetrics-shop-token-0123456789abcdefghij"


def test_metrics_after_a_publish_have_every_series(
    db_url: str, emulator: RunningEmulator, clock: FakeClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IGSCHED_TEST_TOKEN_SHOP", OLD)
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "state"))
    emulator.state.add_account(SHOP_ID, username="shop")
    emulator.state.set_token(SHOP_ID, OLD, age_s=55 * 86400, lifetime_s=60 * 86400)
    cfg = service_config(db_url, emulator.base_url, graph={"login": "instagram"},
                         tokens={"check_s": 0.05}, metrics={"listen": "127.0.0.1:0"})
    settings = settings_of(cfg)
    store = Store(db_url, clock=clock)
    daemon = Daemon(settings, store)
    [exporter] = [d for d in daemon.duties if isinstance(d, MetricsExporter)]
    scraped: list[str] = []

    async def publish_then_scrape() -> None:
        await wait_for(lambda: store.token_state("shop") is not None)
        clock.advance(90)  # the token is refreshed: its expiry becomes known
        await wait_for(lambda: (s := store.token_state("shop")) is not None and s.expires_at is not None)
        at = (to_aware(clock.now()) + timedelta(seconds=1.5)).isoformat()
        await asyncio.to_thread(enqueue_yaml, store, settings,
                                f"account: shop\nposts:\n  - {{key: m, at: '{at}', image: {media_url(emulator, 'm.jpg')}}}\n")
        daemon.wake()
        await wait_for(lambda: by_key(store)["m"].state == "published", timeout_s=20)
        async with httpx.AsyncClient() as client:
            r = await client.get(f"http://127.0.0.1:{exporter.server.port}/metrics")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
        scraped.append(r.text)

    asyncio.run(run_beside([daemon], publish_then_scrape))
    fams = {f.name: f for f in text_string_to_metric_families(scraped[0])}
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in fams.values() for s in f.samples}
    assert samples[("igsched_posts", (("state", "published"),))] == 1
    assert samples[("igsched_posts", (("state", "failed"),))] == 0
    publish = ("endpoint", "POST /{ig-user-id}/media_publish")
    assert samples[("igsched_api_calls_total", (publish, ("outcome", "ok")))] == 1
    assert samples[("igsched_api_calls_total", (("endpoint", "GET /refresh_access_token"), ("outcome", "ok")))] == 1
    assert ("igsched_usage_percent", (("account", "shop"), ("figure", "call_count"), ("header", "app"))) in samples
    assert samples[("igsched_publishing_quota_total", (("account", "shop"),))] > 0
    assert samples[("igsched_publishing_quota_used", (("account", "shop"),))] == 1
    left = samples[("igsched_token_seconds_left", (("account", "shop"),))]
    assert left == pytest.approx(60 * 86400, abs=60)
    assert samples[("igsched_webhook_events_refused_total", (("reason", "signature"),))] == 0
    assert ("igsched_actions", (("state", "done"),)) in samples
    lateness = fams["igsched_publish_lateness_seconds"]
    assert lateness.type == "histogram"
    buckets = {s.labels["le"]: s.value for s in lateness.samples if s.name.endswith("_bucket")}
    assert len(buckets) > 5 and buckets["+Inf"] == 1
    assert samples[("igsched_publish_lateness_seconds_count", (("account", "shop"),))] == 1
    assert OLD not in scraped[0]


def test_webhook_events_received_and_refused_are_counted(
    db_url: str, emulator: RunningEmulator, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IGSCHED_TEST_TOKEN_SHOP", OLD)
    monkeypatch.setenv("IGSCHED_TEST_APP_SECRET", "app-secret-for-metrics")
    monkeypatch.setenv("IGSCHED_TEST_VERIFY", "verify-me")
    cfg = service_config(db_url, emulator.base_url, metrics={"listen": "127.0.0.1:0"},
                         webhooks={"listen": "127.0.0.1:0", "app_secret_env": "IGSCHED_TEST_APP_SECRET",
                                   "verify_token_env": "IGSCHED_TEST_VERIFY"})
    settings = settings_of(cfg)
    store = Store(db_url, clock=clock)
    daemon = Daemon(settings, store)
    [exporter] = [d for d in daemon.duties if isinstance(d, MetricsExporter)]
    body = json.dumps({"object": "instagram", "entry": [{"id": SHOP_ID, "time": 1, "changes": [
        {"field": "comments", "value": {"id": "17900000000000001", "text": "hi",
                                        "from": {"id": "42", "username": "a"}, "media": {"id": "1"}}}]}]}).encode()
    scraped: list[str] = []

    async def post_then_scrape() -> None:
        await wait_for(lambda: daemon.webhooks.intake.address is not None)
        address = daemon.webhooks.intake.address
        assert address is not None
        host, port = address
        url = f"http://{host}:{port}{settings.webhooks.path}"
        async with httpx.AsyncClient() as client:
            good = await client.post(url, content=body, headers={SIGNATURE_HEADER: sign("app-secret-for-metrics", body)})
            bad = await client.post(url, content=body, headers={SIGNATURE_HEADER: sign("wrong", body)})
            assert (good.status_code, bad.status_code) == (200, 403)
            r = await client.get(f"http://127.0.0.1:{exporter.server.port}/metrics")
        scraped.append(r.text)

    asyncio.run(run_beside([daemon], post_then_scrape))
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for f in text_string_to_metric_families(scraped[0]) for s in f.samples}
    assert samples[("igsched_webhook_events_received_total", (("kind", "comment"),))] == 1
    assert samples[("igsched_webhook_events_refused_total", (("reason", "signature"),))] == 1
