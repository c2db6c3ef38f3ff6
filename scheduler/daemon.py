"""The daemon: APScheduler as the timer, the database as the truth.

A periodic safety tick plus a one-shot wake-up at the earliest `next_action_at`; each wake
claims due posts (up to `daemon.workers` at a time) and works each in its own task. SIGTERM
stops claiming, lets running steps finish (bounded), and exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from scheduler.clock import SYSTEM_CLOCK, Clock, utcnow
from scheduler.config import Settings
from scheduler.engage.duties import WebhookDuties
from scheduler.engage.duty import ActionDuty
from scheduler.engage.receiver import ReceiverStats
from scheduler.failures import Failures
from scheduler.gcpolicy import tune_for_service
from scheduler.inbox import scan_inbox
from scheduler.lifecycle import ACTIVE, State
from scheduler.pipeline.runtime import Runtime
from scheduler.pipeline.worker import work
from scheduler.sdnotify import notify, watchdog_interval_s
from scheduler.service.exporter import MetricsExporter
from scheduler.service.heartbeat import Heartbeat
from scheduler.service.outbox import Outbox
from scheduler.service.renewal import TokenRenewal
from scheduler.store import AccountRecord, Claim, PostRecord, Store, claim_order

log = logging.getLogger(__name__)
DRAIN_S = 20.0
PUBLISH_NOW = (State.READY, State.DEFERRED)  # a claimed post in these states is published now
FIRST_WAIT_S = 1.0  # how long other steps started with such posts wait for them, at most
MIN_WAKE_S = 0.001


def claim_room(workers: int, running: int, queued: Sequence[str]) -> int:
    """How many posts to claim now, given the steps running and the states of the posts
    claimed and waiting here (0: send no claim).

    For the free workers and as many again: in a burst a worker that finishes starts its next
    post at once instead of waiting for a claim's round trip. But while more than half a
    worker set of publishes waits, none: every step that ends would otherwise send a claim
    for the one or two posts it made room for (at 16 workers, a claim for about every second
    post). Posts that became claimable since (a lease run out, a post given back) then wait
    at most half a worker set of steps more; a queue holding any other step claims as
    before."""
    want = max(0, 2 * workers - running - len(queued))
    if want < workers // 2 and queued and all(state in PUBLISH_NOW for state in queued):
        return 0
    return want


@dataclass(frozen=True)
class _Clocks:
    """The store's clock (which decides due-ness) and this host's (APScheduler's), read
    together in the claim's thread."""

    store_now: datetime
    mono_now: float  # the monotonic clock, read with store_now
    host_now: datetime
    looked_at: float  # monotonic, taken before the claim: what it says is as of no earlier


class Duty(Protocol):
    """A background duty beside the publishing loop (its own module: start, stop)."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class Daemon:
    def __init__(self, settings: Settings, store: Store, stop_when_idle: bool = False,
                 clock: Clock | None = None, service_gc: bool = False) -> None:
        """`clock`: the pipeline's time; by default the store's injected clock (tests), else
        the system clock. `service_gc`: tune the process's garbage collector once started
        (gcpolicy.py; `igsched run` only: it changes the whole process)."""
        self.settings = settings
        self.store = store
        self.identity = settings.daemon.resolved_identity()
        self.stop_when_idle = stop_when_idle
        self.service_gc = service_gc
        self.rt = Runtime(settings, store, self.identity, clock or store.clock or SYSTEM_CLOCK)
        self.actions = ActionDuty(self.rt)  # engagement actions (README "Engagement")
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._running: set[asyncio.Task[None]] = set()
        self._timer = AsyncIOScheduler(timezone="UTC")
        self._claimer = ThreadPoolExecutor(1, "igsched-claim")
        self._queued: list[tuple[PostRecord, AccountRecord | None]] = []  # claimed, not started
        self.steps_done = 0
        self._claiming = False
        self._look_first = False  # set after a claim that took nothing: look first next time
        self._claim_failures = Failures(log, "claiming due posts")
        self._inbox_failures = Failures(log, "scanning the inbox")
        self.webhooks = WebhookDuties(settings, store, self.identity, on_actions=self.actions.kick)
        # background duties, each in its own module (README "Running it for months")
        self.duties: list[Duty] = [Heartbeat(self.rt), TokenRenewal(self.rt), Outbox(self.rt),
                                   *MetricsExporter.configured(self.rt, self._webhook_stats)]

    def _webhook_stats(self) -> ReceiverStats | None:
        receiver = self.webhooks.intake.receiver
        return receiver.stats if receiver is not None else None

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    @property
    def busy(self) -> bool:
        """A step is running (or being claimed)."""
        return bool(self._running) or bool(self._queued) or self._claiming or self.actions.busy

    @property
    def stepping(self) -> bool:
        """A post's step or an engagement action is running or about to (claimed, queued for
        a worker; actions: also being claimed): `busy` without a post claim in flight."""
        return bool(self._running) or bool(self._queued) or self.actions.busy

    def wake(self) -> None:
        """Look for due work now (e.g. after a test moved the clock forward)."""
        self._wake.set()

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        # database calls run in threads, as many as the engine's pool has connections: more
        # would only queue for a connection (or, on SQLite, for the one writer)
        loop.set_default_executor(ThreadPoolExecutor(self.store.db_threads, "igsched-db"))
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):  # SIGHUP too: systemd restarts us
            # NotImplementedError: asyncio has no signal handlers on this platform (Windows)
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.stop)
        await asyncio.to_thread(self.store.sync_accounts, self.settings.accounts)
        taken = await asyncio.to_thread(self.store.release_own_leases, self.identity)
        if taken:
            log.info("took back %d post(s) leased by an earlier run of %s", taken, self.identity)
        self._timer.start()
        self._timer.add_job(self._tick, "interval", seconds=self.settings.daemon.tick_s,
                            id="tick", coalesce=True, max_instances=1, misfire_grace_time=None)
        self.rt.calllog.start()
        await self.webhooks.start()
        self.actions.start()
        for duty in self.duties:
            await duty.start()
        wd = watchdog_interval_s()
        if wd:
            self._timer.add_job(notify, "interval", args=["WATCHDOG=1"], seconds=wd, id="watchdog")
        if self.service_gc:
            tune_for_service()
        notify("READY=1")
        log.info("igsched daemon %s started (%s, %d workers)", self.identity, self.store.dialect,
                 self.settings.daemon.workers)
        await self._tick()
        try:
            while not self._stop.is_set():
                await self._wake.wait()
                self._wake.clear()
                if self._stop.is_set():
                    break
                await self._dispatch()
                if self.stop_when_idle and not self._running and await self._idle():
                    break
        finally:
            notify("STOPPING=1")
            await self._release_queued()
            await self.webhooks.stop()
            await self._drain()
            await self.actions.stop()
            self._timer.shutdown(wait=False)
            for duty in reversed(self.duties):
                try:
                    await duty.stop()
                except Exception:
                    log.warning("stopping %s failed", type(duty).__name__, exc_info=True)
            await self.rt.aclose()
            self._claimer.shutdown(wait=False)
        log.info("igsched daemon %s stopped", self.identity)
        return 0

    async def _tick(self) -> None:
        if self.settings.queue.inbox_dir is not None:
            try:
                await asyncio.to_thread(scan_inbox, self.settings, self.store, self.identity)
            except Exception as e:
                self._inbox_failures.failed(e)
            else:
                self._inbox_failures.ok()
        self._wake.set()

    async def _dispatch(self) -> None:
        self._start_queued()
        want = claim_room(self.settings.daemon.workers, len(self._running), [q[0].state for q in self._queued])
        if want == 0:
            # a step that finishes wakes us; an action that the last look saw due by now need
            # not wait for the next claim's look
            self.actions.wake_if_due()
            return
        self._claiming = True
        try:
            # one transaction: the due posts, their accounts' rows, and when to look again;
            # on a thread of its own, so that it never waits behind the workers' store calls
            claim, clocks = await asyncio.get_running_loop().run_in_executor(self._claimer, self._claim, want)
        except Exception as e:
            self._claim_failures.failed(e)  # tried again at the next tick
            self.actions.kick()
            return
        finally:
            self._claiming = False
        self._claim_failures.ok()
        self._look_first = not claim.posts
        if claim.ahead.events_waiting:
            self.webhooks.outbox.nudge()  # another replica's receiver stored them, or rules wait
        self.rt.absorb_claim(claim)
        self._queued.extend((post, claim.accounts.get(post.account)) for post in claim.posts)
        self._queued.sort(key=lambda q: claim_order(q[0]))  # publishing first, then by time
        publishing = self._start_queued()
        self._schedule_wakeup(claim, clocks, nothing_claimed=not claim.posts and want > 0)
        # the action duty claims only if the look saw one due; woken after the publishes, since
        # its claim is a write too
        self.actions.hint(claim.ahead.actions, clocks.store_now, clocks.mono_now, clocks.looked_at)
        if publishing:
            asyncio.gather(*publishing, return_exceptions=True).add_done_callback(lambda _: self.actions.wake())
        else:
            self.actions.wake()

    def _claim(self, limit: int) -> tuple[Claim, _Clocks]:
        """In the claim's thread: the claim, then the store's clock and this host's read side by
        side. The claim's own `now` was read before it waited for the database (the SQLite
        writer, a lock, a loaded machine): a timer set from it would be late by that wait.
        After a claim that took nothing, the store looks before it claims: an idle tick is
        then one read statement and no write transaction."""
        looked_at = time.monotonic()
        claim = self.store.claim(self.identity, self.settings.daemon.lease_s, limit, look_first=self._look_first)
        store_now = self.store.now()
        mono_now = time.monotonic()
        return claim, _Clocks(store_now, mono_now, utcnow(), looked_at)  # host clock read last: a timer never early

    def _start_queued(self) -> list[asyncio.Task[None]]:
        """Start queued posts while workers are free; returns the publishes started. Other
        steps started with them (staging, polls, follow-ups) wait until those are done, or
        FIRST_WAIT_S at most: they would compete with the publish for the event loop, the
        database's writer and the CPU at the very moment a post is due. A post whose lease
        has run half out while it waited is left alone: its lease runs out and it is claimed
        again, so a step never starts on a lease that may end before its first write."""
        free = self.settings.daemon.workers - len(self._running)
        now = self.rt.clock.now()
        half = timedelta(seconds=self.settings.daemon.lease_s / 2)
        publishing: list[asyncio.Task[None]] = []
        while free > 0 and self._queued:
            post, account = self._queued.pop(0)
            if post.lease_until is not None and post.lease_until - now < half:
                log.info("post %s waited too long for a worker; leaving it to be claimed again", post.key)
                continue
            if post.state in PUBLISH_NOW or not publishing:
                step = work(self.rt, post, account)
            else:
                step = self._work_after(tuple(publishing), post, account)
            task = asyncio.create_task(step, name=f"post-{post.key}")
            self._running.add(task)
            task.add_done_callback(self._done)
            if post.state in PUBLISH_NOW:
                publishing.append(task)
            free -= 1
        return publishing

    async def _work_after(self, first: tuple[asyncio.Task[None], ...], post: PostRecord,
                          account: AccountRecord | None) -> None:
        """A step started together with posts being published now: it begins when they are
        done, or after FIRST_WAIT_S at most (a publish that hangs holds nothing back long)."""
        await asyncio.wait(first, timeout=FIRST_WAIT_S)
        await work(self.rt, post, account)

    async def _release_queued(self) -> None:
        """Stopping: give back the posts claimed but not started, so that another daemon (or
        the next run) takes them at once rather than when their leases run out."""
        queued, self._queued = self._queued, []
        for post, _ in queued:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self.store.update, post, self.identity)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        self.steps_done += 1
        self._wake.set()

    def _schedule_wakeup(self, claim: Claim, clocks: _Clocks, nothing_claimed: bool) -> None:
        if claim.next_at is None:
            return
        if claim.next_at <= claim.now and nothing_claimed:
            delay = 0.05  # due but not claimable yet (leased elsewhere): look again soon
        else:
            # the store's clock decides due-ness; the timer waits the rest in real time,
            # counted from the clocks read after the claim, not from the claim's start
            delay = (claim.next_at - clocks.store_now).total_seconds()
            if delay <= 0:
                self._wake.set()
                return
            # never sooner than asyncio's timers can tell apart; a store clock that stands
            # still (a test's) would otherwise have the daemon claim again and again
            delay = max(delay, MIN_WAKE_S)
        run_at = clocks.host_now + timedelta(seconds=delay)
        self._timer.add_job(self._wake_up, "date", run_date=run_at.replace(tzinfo=None),
                            id="wake", replace_existing=True, misfire_grace_time=None)

    async def _wake_up(self) -> None:
        """The timer's job. A coroutine, so APScheduler runs it in the event loop: a plain
        function would run in a worker thread and set the event from there, which an
        asyncio.Event does not support."""
        self._wake.set()

    async def _idle(self) -> bool:
        def active_left() -> int:
            states = [s.value for s in ACTIVE]
            left = self.store.list_posts(states)
            pending = [p for p in self.store.list_posts(["published"]) if p.followup_pending]
            return len(left) + len(pending) + self.store.count_active_actions()

        return await asyncio.to_thread(active_left) == 0

    async def _drain(self) -> None:
        if not self._running:
            return
        log.info("waiting for %d running step(s) to finish", len(self._running))
        _, pending = await asyncio.wait(self._running, timeout=DRAIN_S)
        for task in pending:
            task.cancel()  # their leases run out; another run verifies before acting
        if pending:
            await asyncio.wait(pending, timeout=5)
