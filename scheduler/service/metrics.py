"""Prometheus metrics (prefix `igsched_`) and a small /metrics server for the daemon's loop.

Each `Metrics` has its own CollectorRegistry, so tests and several runtimes in one process do
not clash. Gauges that describe the database (posts and actions by state, quotas, token time
left) are set by the daemon, typically from the `refresh` hook the server calls before each
scrape; counters and the lateness histogram are fed as things happen.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from scheduler.config import parse_listen
from scheduler.graph.client import CallRecord
from scheduler.graph.usage import Usage, UsageFigures
from scheduler.lifecycle import State

log = logging.getLogger(__name__)

# from on-the-second to an hour late: staging makes most publishes land in the first buckets
LATENESS_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
ACTION_STATES = ("pending", "sending", "done", "failed", "unknown", "deferred")
WEBHOOK_REFUSALS = ("signature", "too_large", "invalid_json", "not_stored")
# the receiver answers each refusal with its HTTP status
REFUSAL_BY_STATUS = {"403": "signature", "413": "too_large", "400": "invalid_json", "500": "not_stored"}
_FIGURES = ("call_count", "total_cputime", "total_time")
REFRESH_TIMEOUT_S = 5.0


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry
        self.posts = Gauge("igsched_posts", "Posts by lifecycle state", ["state"], registry=r)
        self.publish_lateness = Histogram(
            "igsched_publish_lateness_seconds",
            "How long after its time a post went live",
            ["account"],
            buckets=LATENESS_BUCKETS,
            registry=r,
        )
        self.api_calls = Counter(
            "igsched_api_calls",
            "Graph API calls by endpoint and outcome (ok, or what the failure means)",
            ["endpoint", "outcome"],
            registry=r,
        )
        self.usage_pct = Gauge(
            "igsched_usage_percent",
            "Latest usage-header figures, percent of the allowance",
            ["account", "header", "figure"],
            registry=r,
        )
        self.quota_used = Gauge(
            "igsched_publishing_quota_used", "Posts published in the rolling window", ["account"],
            registry=r,
        )
        self.quota_total = Gauge(
            "igsched_publishing_quota_total", "Publishing quota of the rolling window",
            ["account"], registry=r,
        )
        self.token_seconds_left = Gauge(
            "igsched_token_seconds_left", "Seconds until the account's token expires (if known)",
            ["account"], registry=r,
        )
        self.webhook_received = Counter(
            "igsched_webhook_events_received", "Webhook events stored", ["kind"], registry=r
        )
        self.webhook_refused = Counter(
            "igsched_webhook_events_refused", "Webhook requests refused", ["reason"], registry=r
        )
        self.actions = Gauge("igsched_actions", "Outbound actions by state", ["state"], registry=r)
        for reason in WEBHOOK_REFUSALS:
            self.webhook_refused.labels(reason)
        self.set_posts_by_state({})
        self.set_actions_by_state({})

    # --- fed as things happen ----------------------------------------------------------------

    def observe_call(self, record: CallRecord) -> None:
        """Count one Graph call (usable as, or from, GraphClient's on_call)."""
        outcome = record.outcome
        if outcome == "error" and record.error_class is not None:
            outcome = record.error_class.value
        self.api_calls.labels(record.endpoint, outcome).inc()

    def observe_lateness(self, account: str, seconds: float) -> None:
        self.publish_lateness.labels(account).observe(max(0.0, seconds))

    def webhook_event(self, kind: str, count: int = 1) -> None:
        self.webhook_received.labels(kind).inc(count)

    def webhook_refusal(self, reason: str, count: int = 1) -> None:
        self.webhook_refused.labels(reason).inc(count)

    # --- set from the database ---------------------------------------------------------------

    def set_posts_by_state(self, counts: Mapping[str, int]) -> None:
        """Every lifecycle state gets a value (0 when absent), so series never vanish."""
        for state in State:
            self.posts.labels(state.value).set(counts.get(state.value, 0))

    def set_actions_by_state(self, counts: Mapping[str, int]) -> None:
        for state in (*ACTION_STATES, *(s for s in counts if s not in ACTION_STATES)):
            self.actions.labels(state).set(counts.get(state, 0))

    def set_usage(self, account: str, usage: Usage, ig_user_id: str | None = None) -> None:
        """The figures of one answer's usage headers (absent headers leave the last values)."""
        self._set_figures(account, "app", usage.app)
        self._set_figures(account, "business_use_case", usage.buc_figures(ig_user_id))

    def _set_figures(self, account: str, header: str, figures: UsageFigures | None) -> None:
        if figures is None:
            return
        for name in _FIGURES:
            self.usage_pct.labels(account, header, name).set(getattr(figures, name))

    def set_quota(self, account: str, used: int, total: int) -> None:
        self.quota_used.labels(account).set(used)
        self.quota_total.labels(account).set(total)

    def set_token_seconds_left(self, account: str, seconds: float | None) -> None:
        """None (unknown, or a token that does not expire) removes the series."""
        if seconds is None:
            with contextlib.suppress(KeyError):
                self.token_seconds_left.remove(account)
            return
        self.token_seconds_left.labels(account).set(seconds)

    def forget_accounts(self, keep: Iterable[str]) -> None:
        """Drop per-account series of accounts no longer configured."""
        keep = set(keep)
        per_account: tuple[Gauge | Histogram, ...] = (
            self.quota_used, self.quota_total, self.token_seconds_left, self.usage_pct,
            self.publish_lateness,
        )
        for metric in per_account:  # the account is the first label of each
            for labels in list(metric._metrics):  # prometheus_client has no public listing
                if labels[0] not in keep:
                    metric.remove(*labels)

    def render(self) -> bytes:
        return generate_latest(self.registry)


Refresh = Callable[[], Awaitable[None]]


class MetricsServer:
    """GET /metrics on `listen`, served from the running asyncio loop (aiohttp)."""

    def __init__(self, metrics: Metrics, listen: str, refresh: Refresh | None = None) -> None:
        self.metrics = metrics
        self.host, self.port = parse_listen(listen)
        self._refresh = refresh
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/metrics", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        if self.port == 0:  # an ephemeral port (tests): say which one we got
            server = site._server
            sockets = getattr(server, "sockets", None) or []
            if sockets:
                self.port = sockets[0].getsockname()[1]
        log.info("metrics at http://%s:%d/metrics", self.host, self.port)

    async def aclose(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _handle(self, request: web.Request) -> web.Response:
        if self._refresh is not None:
            try:
                await asyncio.wait_for(self._refresh(), REFRESH_TIMEOUT_S)
            except Exception:  # a slow or failing database still gets the counters out
                log.warning("metrics: refreshing from the database failed", exc_info=True)
        body = self.metrics.render()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
