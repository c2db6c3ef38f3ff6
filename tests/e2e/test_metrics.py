"""/metrics over real HTTP, parsed with prometheus_client's own parser."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from scheduler.graph.client import CallRecord
from scheduler.graph.errors import ErrorClass
from scheduler.graph.usage import Usage, UsageFigures
from scheduler.service.metrics import LATENESS_BUCKETS, Metrics, MetricsServer

DASHBOARD = Path(__file__).resolve().parents[2] / "systemd" / "grafana-dashboard.json"


def _call(outcome: str = "ok", error_class: ErrorClass | None = None) -> CallRecord:
    return CallRecord(
        method="POST", endpoint="POST /{ig-user-id}/media_publish", path="/v23.0/1/media_publish",
        http_status=200, duration_ms=12.0, error_code=None, error_subcode=None,
        error_message=None, fbtrace_id=None, usage=Usage(), outcome=outcome, account="shop",
        post_id=1, started_at=datetime.now(UTC), error_class=error_class,
    )


def _scrape(metrics: Metrics, refresh: Any = None) -> tuple[str, dict[str, Any], int]:
    async def main() -> tuple[str, int]:
        server = MetricsServer(metrics, "127.0.0.1:0", refresh=refresh)
        await server.start()
        try:
            async with httpx.AsyncClient() as client:
                r = await client.get(f"http://127.0.0.1:{server.port}/metrics")
                missing = await client.get(f"http://127.0.0.1:{server.port}/other")
                assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
                return r.text, missing.status_code
        finally:
            await server.aclose()

    text, missing = asyncio.run(main())
    return text, {f.name: f for f in text_string_to_metric_families(text)}, missing


def test_scrape_after_a_publish_has_every_series() -> None:
    metrics = Metrics()
    metrics.observe_call(_call())
    metrics.observe_call(_call("error", ErrorClass.THROTTLED))
    metrics.observe_lateness("shop", 0.42)
    metrics.set_usage("shop", Usage(app=UsageFigures(12, 3, 4),
                                    buc={"1": UsageFigures(40, 5, 6, 0)}), "1")
    metrics.set_quota("shop", 3, 50)
    metrics.webhook_event("comment")
    metrics.webhook_refusal("signature")
    refreshed: list[int] = []

    async def refresh() -> None:  # what the daemon does: read the database at scrape time
        refreshed.append(1)
        metrics.set_posts_by_state({"published": 1, "planned": 2})
        metrics.set_actions_by_state({"done": 4})
        metrics.set_token_seconds_left("shop", 50 * 86400.0)

    _, fams, missing = _scrape(metrics, refresh)
    assert refreshed == [1] and missing == 404
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for f in fams.values() for s in f.samples}
    assert samples[("igsched_posts", (("state", "published"),))] == 1
    assert samples[("igsched_posts", (("state", "failed"),))] == 0  # every state is a series
    endpoint = ("endpoint", "POST /{ig-user-id}/media_publish")
    assert samples[("igsched_api_calls_total", (endpoint, ("outcome", "ok")))] == 1
    assert samples[("igsched_api_calls_total", (endpoint, ("outcome", "throttled")))] == 1
    assert samples[("igsched_usage_percent",
                    (("account", "shop"), ("figure", "call_count"), ("header", "app")))] == 12
    assert samples[("igsched_usage_percent", (("account", "shop"), ("figure", "call_count"),
                                              ("header", "business_use_case")))] == 40
    assert samples[("igsched_publishing_quota_used", (("account", "shop"),))] == 3
    assert samples[("igsched_publishing_quota_total", (("account", "shop"),))] == 50
    assert samples[("igsched_token_seconds_left", (("account", "shop"),))] == 50 * 86400
    assert samples[("igsched_webhook_events_received_total", (("kind", "comment"),))] == 1
    assert samples[("igsched_webhook_events_refused_total", (("reason", "signature"),))] == 1
    assert samples[("igsched_webhook_events_refused_total", (("reason", "too_large"),))] == 0
    assert samples[("igsched_actions", (("state", "done"),))] == 4
    assert samples[("igsched_actions", (("state", "unknown"),))] == 0
    lateness = fams["igsched_publish_lateness_seconds"]
    assert lateness.type == "histogram"
    buckets = {s.labels["le"]: s.value for s in lateness.samples if s.name.endswith("_bucket")}
    assert len(buckets) == len(LATENESS_BUCKETS) + 1  # and +Inf
    assert buckets["0.25"] == 0 and buckets["0.5"] == 1 and buckets["+Inf"] == 1


def test_registries_are_separate_and_unknown_tokens_drop_their_series() -> None:
    a, b = Metrics(), Metrics()
    a.observe_call(_call())
    a.set_token_seconds_left("shop", 100.0)
    a.set_token_seconds_left("shop", None)
    a.set_token_seconds_left("other", None)
    text_b = b.render().decode()
    assert "igsched_api_calls_total{" not in text_b
    assert "igsched_token_seconds_left{" not in a.render().decode()
    a.set_quota("gone", 1, 2)
    a.observe_lateness("gone", 1.0)
    a.set_usage("gone", Usage(app=UsageFigures(1, 1, 1)))
    a.forget_accounts(["shop"])
    assert 'account="gone"' not in a.render().decode()


def test_a_failing_refresh_still_serves_the_counters() -> None:
    metrics = Metrics()
    metrics.observe_call(_call())

    async def broken() -> None:
        raise RuntimeError("database down")

    _, fams, _ = _scrape(metrics, broken)
    assert "igsched_api_calls" in fams


def test_sample_dashboard_uses_only_metrics_we_export() -> None:
    dash = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    assert exprs
    names = {f.name for f in text_string_to_metric_families(Metrics().render().decode())}
    exported = names | {f"{n}_total" for n in names} | {
        f"igsched_publish_lateness_seconds_{s}" for s in ("bucket", "sum", "count")
    }
    used = {m for e in exprs for m in re.findall(r"\bigsched_[a-z_]+", e)}
    assert used and used <= exported, used - exported


def test_calls_to_the_fake_api_are_counted_by_endpoint_and_outcome() -> None:
    emulator = __import__("scheduler.emulator", fromlist=["RunningEmulator"])
    from scheduler.graph import GraphClient, GraphError, call_context

    ig, token = "17841400000000001", "IGAAmetrics-token-0123456789abcdef"
    metrics = Metrics()

    def on_call(record: CallRecord) -> None:
        metrics.observe_call(record)
        if record.account:
            metrics.set_usage(record.account, record.usage, ig)

    async def main() -> None:
        async with GraphClient(running.base_url, "v23.0", 10.0, on_call=on_call) as client:
            with call_context(account="shop"):
                image = {"image_url": "https://cdn.example.com/a.jpg"}
                cid = await client.create_container(ig, token, image)
                for _ in range(40):
                    if (await client.container_status(cid, token)).status_code == "FINISHED":
                        break
                    running.state.advance(1.0)
                await client.publish(ig, token, cid)
                with contextlib.suppress(GraphError):
                    await client.publish(ig, "IGAAwrong-token-0123456789abcdefgh", cid)

    with emulator.RunningEmulator() as running:
        running.state.add_account(ig, username="shop", token=token)
        running.state.force_usage(ig, 42)
        asyncio.run(main())
    metrics.observe_lateness("shop", 0.2)
    _, fams, _ = _scrape(metrics)
    calls = {(s.labels["endpoint"], s.labels["outcome"]): s.value
             for s in fams["igsched_api_calls"].samples if s.name.endswith("_total")}
    assert calls[("POST /{ig-user-id}/media", "ok")] == 1
    assert calls[("POST /{ig-user-id}/media_publish", "ok")] == 1
    assert calls[("POST /{ig-user-id}/media_publish", "auth")] == 1
    assert calls[("GET /{container-id}", "ok")] >= 1
    usage = [s for s in fams["igsched_usage_percent"].samples if s.labels["account"] == "shop"]
    assert max(s.value for s in usage if s.labels["header"] == "business_use_case") == 42
    assert token not in metrics.render().decode()
