"""Staging: create every container ahead of time and poll until each is FINISHED.

Single posts have one container (media row position 0). Carousels have one per item
(positions 1..n); the parent is created only once every child is FINISHED, and is the
container that gets published (posts.container_id).

Containers are created only when needed: once per media (again only when Meta says one
EXPIRED or is unusable, and then only the unfinished ones), and never beyond the account's
container budget (`staging.containers_per_day` in a rolling 24 h; see learning.py).
A local video goes up through the resumable upload; its file is checked just before the
container is created, so a file that vanished after enqueue fails the post without a
container being made for nothing.

A post that becomes ready after its time keeps the cause (`late_cause`), so its publish can
say why it was late; one that waits for container budget is held (`hold`), so the wait is
recorded once, not at every look.
"""

from __future__ import annotations

import logging
import os
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal

from scheduler.graph.errors import ErrorClass, GraphError
from scheduler.lifecycle import Hold, PostMove, State, poll_delay_s
from scheduler.models import PostSpec
from scheduler.pipeline.budget import container_slot_at, release_slots
from scheduler.pipeline.failed_containers import container_failed
from scheduler.pipeline.outcomes import fail, handle_error, transition, update
from scheduler.pipeline.params import media_for_position, params_for_position, parent_params
from scheduler.pipeline.processing import observed_processing_s
from scheduler.pipeline.published import record_published
from scheduler.pipeline.quota import quota_before_ready
from scheduler.pipeline.runtime import Paused, Runtime
from scheduler.store import MediaRecord, PostRecord

log = logging.getLogger(__name__)



class LocalFileProblem(Exception):
    """A local video cannot be read now (it was readable when the post was enqueued)."""


def _label(m: MediaRecord) -> str:
    return "the media" if m.position == 0 else f"carousel item {m.position}"


def _check_local_file(path: Path) -> None:
    try:
        if path.is_symlink():  # swapped for a link since it was checked: never followed
            raise LocalFileProblem(f"local file {path} has become a symbolic link; it is not uploaded")
        if not path.is_file():
            raise LocalFileProblem(f"local file {path} is gone (it was there when the post was enqueued)")
        with path.open("rb"):
            pass
    except OSError as e:
        raise LocalFileProblem(f"local file {path} cannot be read: {e.strerror or e}") from None


async def _create(rt: Runtime, post: PostRecord, spec: PostSpec, m: MediaRecord, token: str) -> str:
    ig = rt.ig_user_id(post.account)
    assert ig is not None
    params = params_for_position(spec, m.position)
    if params.get("upload_type") == "resumable":
        path = Path(media_for_position(spec, m.position).source)
        _check_local_file(path)
        cid, uri = await rt.graph.start_resumable(ig, token, params)
        try:
            await rt.graph.upload_file(uri, token, path)
        except OSError as e:  # the file went away between the check and the upload
            raise LocalFileProblem(f"local file {path} could not be uploaded: {e.strerror or e}") from None
        log.info("post %s: uploaded %s (%d bytes) to container %s", post.key, path, os.path.getsize(path), cid)
        return cid
    return await rt.graph.create_container(ig, token, params)


async def stage(rt: Runtime, post: PostRecord, token: str) -> None:
    """One staging step; leaves the post in staging (poll again), ready, or failed."""
    spec = post.post_spec()
    try:
        await _stage(rt, post, spec, token)
    except LocalFileProblem as e:
        await fail(rt, post, str(e))
    except (GraphError, Paused) as e:
        if isinstance(e, GraphError) and e.error_class in (ErrorClass.RECREATE, ErrorClass.RETRY_THEN_RECREATE):
            await _forget_unfinished(rt, post)
        await handle_error(rt, post, e, PostMove.TO_STAGING if post.state != State.PLANNED else PostMove.TO_PLANNED)


async def _forget_unfinished(rt: Runtime, post: PostRecord) -> None:
    """Meta called a container unusable: forget those not FINISHED (and a carousel's parent),
    keep the finished ones, so only what is needed is created again."""
    clear_post = post.kind == "carousel"
    for m in await rt.db(rt.store.media, post.id):
        if m.container_id and m.status_code != "FINISHED":
            await rt.db(rt.store.update_media, post, m.id, container_id=None, container_created_at=None,
                        status_code=None, status_checked_at=None, error=None)
            clear_post = clear_post or m.position == 0
    if clear_post:
        await update(rt, post, None, release=False, container_id=None, container_created_at=None)


async def _budget_ok(rt: Runtime, post: PostRecord, spec: PostSpec, media: list[MediaRecord]) -> int | None:
    """Is there room for the containers this step may create? If so, the slots reserved (to
    give back with release_slots); if not, None, and the post waits for room."""
    needed = sum(1 for m in media if m.container_id is None)
    if spec.kind == "carousel" and post.container_id is None:
        needed += 1  # the parent: reserve it now, so the items are not made in vain
    if not needed:
        return 0
    free_at, used = await container_slot_at(rt, post.account, needed)
    if free_at is None:
        return needed
    limit = rt.settings.staging.containers_per_day
    if needed > limit:
        await fail(rt, post, f"this post needs {needed} containers; staging.containers_per_day is {limit}")
        return None
    reason = (f"container limit: {used} of {limit} containers created in the last 24 h and this post "
              f"needs {needed}; next free slot at {free_at:%Y-%m-%d %H:%M:%S} UTC")
    first = post.hold != Hold.CONTAINER_BUDGET
    await update(rt, post, reason if first else None, reason=reason, hold=Hold.CONTAINER_BUDGET,
                 next_action_at=free_at)
    return None


async def _stage(rt: Runtime, post: PostRecord, spec: PostSpec, token: str) -> None:
    media = await rt.db(rt.store.media, post.id)
    reserved = await _budget_ok(rt, post, spec, media)
    if reserved is None:
        return
    try:
        await _stage_within(rt, post, spec, token, media)
    finally:  # the creations are in the call log now (or were not made): they count there
        release_slots(rt, post.account, reserved)


async def _stage_within(rt: Runtime, post: PostRecord, spec: PostSpec, token: str,
                        media: list[MediaRecord]) -> None:
    pending: list[tuple[datetime, float]] = []  # (created at, expected processing s)
    unpolled = False
    for m in media:
        expected = await rt.processing.expected_s(post.account, m.media_kind)
        if m.container_id is None:
            cid = await _create(rt, post, spec, m, token)
            created = rt.clock.now()
            await rt.db(rt.store.container_made, post, m.id, rt.identity, cid, created, m.position == 0)
            if unpolled_image(post, m, expected, created):
                unpolled = True
                continue
            pending.append((created, expected))
            continue
        if m.status_code == "FINISHED":
            continue
        st = await rt.graph.container_status(m.container_id, token)
        checked = rt.clock.now()
        await rt.db(rt.store.update_media, post, m.id, status_code=st.status_code, status_checked_at=checked,
                    error=st.status if st.status_code == "ERROR" else None)
        if st.status_code == "FINISHED":
            if m.container_created_at:
                seen = observed_processing_s(m.container_created_at, checked, m.status_checked_at, m.status_code,
                                             expected)
                if seen is not None:
                    rt.processing.observe(post.account, m.media_kind, seen)
        elif st.status_code == "ERROR":
            await container_failed(rt, post, m, st.status)
            return
        elif st.status_code == "EXPIRED":
            # never published (that would say PUBLISHED): safe to make a new one
            await rt.db(rt.store.update_media, post, m.id, container_id=None, container_created_at=None,
                        status_code=None, status_checked_at=None)
            if m.position == 0:
                await update(rt, post, f"{_label(m)}: container expired; creating a new one", release=False,
                             container_id=None, container_created_at=None)
            pending.append((checked, 0.0))
        elif st.status_code == "PUBLISHED":
            # a single post's container, or an item of a carousel that went live
            await _went_live(rt, post, token)
            return
        else:  # IN_PROGRESS (or a status we do not know: keep asking)
            pending.append((m.container_created_at or checked, expected))

    if not pending and spec.kind == "carousel":
        parent = await _carousel_parent(rt, post, spec, media, token)
        if parent is None:
            return  # failed or published
        if parent is not True:
            pending.append(parent)
    if not pending:
        await _ready(rt, post, token, NOT_POLLED if unpolled else "every container processed")
        return
    await _poll_later(rt, post, pending)


# An image is processed in seconds: with minutes to spare, a status check would only say
# FINISHED, and media_publish at the due time tells as much (a container still processing is
# refused with 9007 and polled then; one in ERROR is refused with its error).
NO_CHECK_MIN_LEAD_S = 60.0
NO_CHECK_LEAD_FACTOR = 30.0  # … and the time left is this many times the expected processing
NOT_POLLED = "image container created; not polled: media_publish at its time tells that it is processed"


def unpolled_image(post: PostRecord, m: MediaRecord, expected_s: float, created: datetime) -> bool:
    """A single image (feed or story) created well ahead of its time needs no status check."""
    if post.asap or post.kind not in ("image", "story") or m.position != 0 or m.media_kind != "image":
        return False
    left = (post.due_at - created).total_seconds()
    return left >= max(NO_CHECK_MIN_LEAD_S, NO_CHECK_LEAD_FACTOR * expected_s)


async def _went_live(rt: Runtime, post: PostRecord, token: str) -> None:
    await record_published(rt, post, token, "the container says PUBLISHED")


async def _carousel_parent(
    rt: Runtime, post: PostRecord, spec: PostSpec, media: list[MediaRecord], token: str
) -> tuple[datetime, float] | Literal[True] | None:
    """Create (or poll) the carousel parent once every child is FINISHED: True when it is
    FINISHED, (created at, expected s) while it processes, None when the post failed or
    turned out to be live."""
    ig = rt.ig_user_id(post.account)
    assert ig is not None
    expected = await rt.processing.expected_s(post.account, "image")
    current = await rt.db(rt.store.get_by_id, post.id)
    assert current is not None
    if current.container_id is None:
        ids = [m.container_id for m in media if m.container_id]
        cid = await rt.graph.create_container(ig, token, parent_params(spec, ids))
        # the age that matters for expiry is the oldest item's
        oldest = min((m.container_created_at for m in media if m.container_created_at), default=rt.clock.now())
        await update(rt, post, "every carousel item processed; parent container created", release=False,
                     container_id=cid, container_created_at=oldest)
        return rt.clock.now(), expected
    st = await rt.graph.container_status(current.container_id, token)
    if st.status_code == "FINISHED":
        return True
    if st.status_code == "ERROR":
        await container_failed(rt, post, None, st.status)
        return None
    if st.status_code == "PUBLISHED":
        await _went_live(rt, post, token)
        return None
    if st.status_code == "EXPIRED":
        await rt.db(rt.store.reset_containers, post)
        return rt.clock.now(), 0.0
    # the parent was made in the step that saw the last item FINISHED
    made = max((m.status_checked_at for m in media if m.status_checked_at), default=rt.clock.now())
    return made, expected


async def _ready(rt: Runtime, post: PostRecord, token: str, event: str) -> None:
    try:  # now rather than at the due time: then only media_publish remains
        await quota_before_ready(rt, post, token)
    except (GraphError, Paused) as e:
        log.info("publishing quota of %s not read: %s", post.account, e)
    now = rt.clock.now()
    due = post.due_at
    cause = None
    if now > due and not post.asap:
        lag = (now - due).total_seconds()
        cause = f"{await _late_what(rt, post)} was still processing at its time"
        event = f"ready after its time: {lag:.1f} s; {cause}"
    await transition(rt, post, PostMove.TO_READY, event, attempts=0, reason=None, late_cause=cause,
                     next_action_at=max(due, now))


async def _late_what(rt: Runtime, post: PostRecord) -> str:
    """Which media was not processed by the due time (in words)."""
    media = await rt.db(rt.store.media, post.id)
    if post.kind != "carousel":
        return "the video" if media and media[0].media_kind == "video" else "the image"
    late = [m for m in media if m.status_checked_at and m.status_checked_at > post.due_at]
    if not late:
        return "the carousel container"
    return ", ".join(f"carousel item {m.position} ({m.media_kind})" for m in late)


async def _poll_later(rt: Runtime, post: PostRecord, pending: list[tuple[datetime, float]]) -> None:
    now = rt.clock.now()
    spacing = rt.spacing(post.account)
    delays = [
        poll_delay_s(now, post.due_at, created, expected, rt.settings.staging, spacing)
        for created, expected in pending
    ]
    await transition(rt, post, PostMove.TO_STAGING, None, reason=None,
                     next_action_at=now + timedelta(seconds=min(delays)))
