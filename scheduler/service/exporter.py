"""Daemon duty: with `metrics.listen`, serve Prometheus text at /metrics (README "Running it
for months"). Calls and publish lateness are counted as they happen (the runtime's
observers); posts and actions by state, quotas and token time left are read from the
database at each scrape, so every replica shows the same figures."""

from __future__ import annotations

import logging
from collections.abc import Callable

from scheduler.engage.receiver import ReceiverStats
from scheduler.graph.client import CallRecord
from scheduler.pipeline.runtime import Runtime
from scheduler.service.metrics import REFUSAL_BY_STATUS, Metrics, MetricsServer
from scheduler.store import PostRecord

log = logging.getLogger(__name__)


class MetricsExporter:
    def __init__(self, rt: Runtime, listen: str,
                 webhook_stats: Callable[[], ReceiverStats | None] = lambda: None) -> None:
        self.rt = rt
        self.metrics = Metrics()
        self.webhook_stats = webhook_stats  # the receiver's counters, when it runs
        self._counted: dict[tuple[str, str], int] = {}  # what the counters already hold
        self.server = MetricsServer(self.metrics, listen, refresh=self.refresh)
        rt.call_observers.append(self.observe_call)
        rt.publish_observers.append(self.observe_published)

    @classmethod
    def configured(cls, rt: Runtime,
                   webhook_stats: Callable[[], ReceiverStats | None] = lambda: None) -> list[MetricsExporter]:
        """One exporter when metrics.listen is set, none otherwise."""
        listen = rt.settings.metrics.listen
        return [] if listen is None else [cls(rt, listen, webhook_stats)]

    async def start(self) -> None:
        try:
            await self.server.start()
        except OSError as e:  # publishing goes on without the endpoint
            log.error("metrics: cannot listen on %s: %s", self.rt.settings.metrics.listen, e.strerror or e)

    async def stop(self) -> None:
        await self.server.aclose()

    def observe_call(self, rec: CallRecord) -> None:
        self.metrics.observe_call(rec)
        if rec.account is not None and rec.usage is not None:
            self.metrics.set_usage(rec.account, rec.usage, self.rt.ig_user_id(rec.account))

    def observe_published(self, post: PostRecord, lateness_s: float) -> None:
        if not post.asap:  # "as soon as ready" has no time to be late for
            self.metrics.observe_lateness(post.account, lateness_s)

    async def refresh(self) -> None:
        figures = await self.rt.db(self.rt.store.status_figures)
        quotas = await self.rt.db(self.rt.store.quota_report)
        m = self.metrics
        m.set_posts_by_state(figures["posts"])
        m.set_actions_by_state(figures["actions"])
        now = figures["now"]
        configured = [a.name for a in self.rt.settings.accounts]
        for q in quotas:
            if q["account"] in configured and q["quota_total"]:
                m.set_quota(q["account"], q["quota_used"], q["quota_total"])
        tokens = {t.account: t for t in figures["tokens"]}
        for name in configured:
            t = tokens.get(name)
            left = None if t is None or t.expires_at is None else (t.expires_at - now).total_seconds()
            m.set_token_seconds_left(name, left)
        m.forget_accounts(configured)
        self._count_webhooks()

    def _count_webhooks(self) -> None:
        """Bring the webhook counters up to the receiver's own counts (events by kind,
        refusals by HTTP status)."""
        stats = self.webhook_stats()
        if stats is None:
            return
        for (what, label), total in [*((("event", k), n) for k, n in stats.by_kind.items()),
                                     *((("refusal", REFUSAL_BY_STATUS.get(s, s)), n) for s, n in stats.refused.items())]:
            new = total - self._counted.get((what, label), 0)
            if new > 0:
                (self.metrics.webhook_event if what == "event" else self.metrics.webhook_refusal)(label, new)
            self._counted[(what, label)] = total
