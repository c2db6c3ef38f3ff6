"""Staging: create every container ahead of time and poll until each is FINISHED.

Single posts have one container (media row position 0). Carousels have one per item
(positions 1..n); the parent is created only once every child is FINISHED, and is the
container that gets published (posts.container_id).
"""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

from scheduler.clock import utcnow
from scheduler.graph.errors import ErrorClass, GraphError
from scheduler.lifecycle import State, poll_delay_s
from scheduler.models import PostSpec
from scheduler.pipeline.outcomes import fail, handle_error, move
from scheduler.pipeline.params import media_for_position, params_for_position, parent_params
from scheduler.pipeline.runtime import Paused, Runtime
from scheduler.store import MediaRecord, PostRecord

log = logging.getLogger(__name__)


def _label(m: MediaRecord) -> str:
    return "the media" if m.position == 0 else f"carousel item {m.position}"


async def _create(rt: Runtime, post: PostRecord, spec: PostSpec, m: MediaRecord, token: str) -> str:
    ig = rt.ig_user_id(post.account)
    assert ig is not None
    params = params_for_position(spec, m.position)
    rt.check_pause(post.account)
    if params.get("upload_type") == "resumable":
        cid, uri = await rt.graph.start_resumable(ig, token, params)
        rt.check_pause(post.account)
        await rt.graph.upload_file(uri, token, Path(media_for_position(spec, m.position).source))
        return cid
    return await rt.graph.create_container(ig, token, params)


async def stage(rt: Runtime, post: PostRecord, token: str) -> None:
    """One staging step; leaves the post in staging (poll again), ready, or failed."""
    spec = post.post_spec()
    try:
        await _stage(rt, post, spec, token)
    except (GraphError, Paused) as e:
        if isinstance(e, GraphError) and e.error_class in (ErrorClass.RECREATE, ErrorClass.RETRY_THEN_RECREATE):
            await rt.db(rt.store.reset_containers, post)
        await handle_error(rt, post, e, State.STAGING if post.state != State.PLANNED else State.PLANNED)


async def _stage(rt: Runtime, post: PostRecord, spec: PostSpec, token: str) -> None:
    media = await rt.db(rt.store.media, post.id)
    pending: list[tuple[MediaRecord, float]] = []  # (item, expected processing s)
    for m in media:
        expected = rt.expected_processing_s(post.account, m.media_kind)
        if m.container_id is None:
            cid = await _create(rt, post, spec, m, token)
            created = utcnow()
            await rt.db(rt.store.update_media, post, m.id, container_id=cid,
                        container_created_at=created, status_code="IN_PROGRESS")
            if m.position == 0:
                await move(rt, post, None, release=False, container_id=cid, container_created_at=created)
            pending.append((m, expected))
            continue
        if m.status_code == "FINISHED":
            continue
        rt.check_pause(post.account)
        st = await rt.graph.container_status(m.container_id, token)
        checked = utcnow()
        await rt.db(rt.store.update_media, post, m.id, status_code=st.status_code, status_checked_at=checked,
                    error=st.status if st.status_code == "ERROR" else None)
        if st.status_code == "FINISHED":
            if m.container_created_at:
                rt.observe_processing(post.account, m.media_kind, (checked - m.container_created_at).total_seconds())
        elif st.status_code == "ERROR":
            await fail(rt, post, f"Meta could not process {_label(m)} ({m.source}): {st.status or 'ERROR'}")
            return
        elif st.status_code == "EXPIRED":
            # never published (that would say PUBLISHED): safe to make a new one
            await rt.db(rt.store.update_media, post, m.id, container_id=None, container_created_at=None,
                        status_code=None)
            if m.position == 0:
                await move(rt, post, f"{_label(m)}: container expired; creating a new one", release=False,
                           container_id=None, container_created_at=None)
            pending.append((m, 0.0))
        elif st.status_code == "PUBLISHED" and m.position == 0:
            from scheduler.pipeline.publishing import record_published

            await record_published(rt, post, token, "the container says PUBLISHED")
            return
        else:  # IN_PROGRESS (or a status we do not know: keep asking)
            pending.append((m, expected))

    if not pending and spec.kind == "carousel":
        parent = await _carousel_parent(rt, post, spec, media, token)
        if parent == "failed":
            return
        if parent == "pending":
            pending.append((media[0], rt.expected_processing_s(post.account, "image")))
    if not pending:
        await _ready(rt, post, token)
        return
    await _poll_later(rt, post, pending)


async def _carousel_parent(
    rt: Runtime, post: PostRecord, spec: PostSpec, media: list[MediaRecord], token: str
) -> str:
    """Create (or poll) the carousel parent once every child is FINISHED:
    "pending", "finished" or "failed"."""
    ig = rt.ig_user_id(post.account)
    assert ig is not None
    current = await rt.db(rt.store.get_by_id, post.id)
    assert current is not None
    if current.container_id is None:
        rt.check_pause(post.account)
        ids = [m.container_id for m in media if m.container_id]
        cid = await rt.graph.create_container(ig, token, parent_params(spec, ids))
        oldest = min((m.container_created_at for m in media if m.container_created_at), default=utcnow())
        await move(rt, post, "every carousel item processed; parent container created", release=False,
                   container_id=cid, container_created_at=oldest)
        return "pending"
    rt.check_pause(post.account)
    st = await rt.graph.container_status(current.container_id, token)
    if st.status_code == "FINISHED":
        return "finished"
    if st.status_code == "ERROR":
        await fail(rt, post, f"Meta could not process the carousel: {st.status or 'ERROR'}")
        return "failed"
    if st.status_code == "EXPIRED":
        await rt.db(rt.store.reset_containers, post)
    return "pending"


async def _ready(rt: Runtime, post: PostRecord, token: str) -> None:
    from scheduler.pipeline.publishing import ensure_quota_fresh

    try:  # now rather than at the due time: then only media_publish remains
        await ensure_quota_fresh(rt, post, token)
    except (GraphError, Paused) as e:
        log.info("publishing quota of %s not refreshed: %s", post.account, e)
    now = utcnow()
    due = post.due_at
    late = now > due and not post.asap
    await move(rt, post, "every container processed" + (" (after the due time)" if late else ""),
               state=State.READY, attempts=0, reason=None, next_action_at=max(due, now))


async def _poll_later(rt: Runtime, post: PostRecord, pending: list[tuple[MediaRecord, float]]) -> None:
    now = utcnow()
    spacing = rt.spacing(post.account)
    delays = [
        poll_delay_s(now, post.due_at, m.container_created_at or now, expected, rt.settings.staging, spacing)
        for m, expected in pending
    ]
    await move(rt, post, None, state=State.STAGING, reason=None,
               next_action_at=now + timedelta(seconds=min(delays)))
