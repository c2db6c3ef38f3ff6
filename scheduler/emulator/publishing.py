"""Content publishing on the model: containers, resumable uploads, media_publish, quota."""

from __future__ import annotations

from typing import Any

from .core import StateCore
from .errors import GraphError, UploadError, invalid_parameter, publishing_error
from .models import (
    CONTAINER_ID_BASE,
    MEDIA_ID_BASE,
    Account,
    Container,
    Media,
    Upload,
    shortcode_for,
)
from .processing import plan_processing
from .validation import TRANSPORT_PARAMS, validate_container


class PublishingOps(StateCore):
    """The three publishing steps and the publishing quota, as the API enforces them."""

    def create_container(
        self, account_id: str, params: dict[str, str], upload_prefix: str
    ) -> dict[str, str]:
        """POST /{ig-user-id}/media. `upload_prefix` is `<base>/ig-api-upload/<version>`."""
        with self.lock:
            spec = validate_container(params)
            acct = self._account(account_id)
            now = self.now()
            self._check_container_limit(acct, now)
            if spec.slot == "CAROUSEL":
                self._check_children(account_id, spec.children, now)
            cid = self._new_id(CONTAINER_ID_BASE)
            if spec.resumable:
                processing_s, failure, ready_at, upload = 0.0, None, None, Upload()
            else:
                outcome = plan_processing(
                    spec.url, spec.media, self.default_processing_s, self._media_rules
                )
                processing_s, failure = outcome.processing_s, outcome.failure
                ready_at, upload = now + outcome.processing_s, None
            self._containers[cid] = Container(
                id=cid,
                account=account_id,
                slot=spec.slot,
                media=spec.media,
                url=spec.url,
                params=spec.params,
                created_at=now,
                processing_s=processing_s,
                ready_at=ready_at,
                failure=failure,
                children=spec.children,
                upload=upload,
            )
            acct.container_times.append(now)
            answer = {"id": cid}
            if spec.resumable:
                answer["uri"] = f"{upload_prefix}/{cid}"
            return answer

    def _check_container_limit(self, acct: Account, now: float) -> None:
        # The facts sheet gives the limit (400 per rolling 24 h) but no error code; 4 is
        # what Graph uses for "request limit reached".
        limit = self.containers_per_day
        acct.container_times = [t for t in acct.container_times if t > now - 86400]
        if limit is not None and len(acct.container_times) >= limit:
            raise GraphError(
                4,
                f"(#4) Application request limit reached: at most {limit} containers may be "
                "created per account in 24 hours.",
                is_transient=True,
            )

    def _check_children(self, account_id: str, children: list[str], now: float) -> None:
        for child_id in children:
            child = self._containers.get(child_id)
            if child is None or child.account != account_id:
                raise invalid_parameter(f"child {child_id} is not a container of this account")
            if not child.is_carousel_item:
                raise invalid_parameter(
                    f"child {child_id} was not created with is_carousel_item=true"
                )
            status = child.status_code(now, self.container_ttl_s)
            if status != "FINISHED":
                raise invalid_parameter(f"child {child_id} is {status}, not FINISHED")

    def upload(
        self,
        cid: str,
        *,
        offset: str | None,
        file_size: str | None,
        data: bytes,
        file_url: str | None,
    ) -> dict[str, Any]:
        """The rupload endpoint: the bytes (or a file_url) of a resumable container."""
        with self.lock:
            c = self._containers.get(cid)
            if c is None:
                raise UploadError(f"No upload session for container {cid}.")
            up = c.upload
            if up is None:
                raise UploadError(f"Container {cid} was not created with upload_type=resumable.")
            now = self.now()
            if up.completed_at is not None:
                raise UploadError(f"The upload for container {cid} is already complete.")
            if c.status_code(now, self.container_ttl_s) == "EXPIRED":
                raise UploadError(f"Container {cid} has expired.")
            if file_url:
                if data:
                    raise UploadError("Send either a body or a file_url header, not both.")
                up.file_url = file_url
            else:
                try:
                    size = int(file_size or "")
                    start = int(offset or "0")
                except ValueError:
                    raise UploadError("offset and file_size headers must be integers.") from None
                if up.file_size is not None and size != up.file_size:
                    raise UploadError(
                        f"file_size {size} differs from the earlier file_size {up.file_size}."
                    )
                if start != up.received:
                    raise UploadError(
                        f"offset {start} does not match the {up.received} bytes received."
                    )
                if start + len(data) != size:
                    raise UploadError(
                        f"file_size {size} does not match offset {start} plus the "
                        f"{len(data)} bytes sent."
                    )
                up.file_size = size
                up.received += len(data)
                up.digest.update(data)
            up.completed_at = now
            outcome = plan_processing(
                up.file_url, "video", self.default_processing_s, self._media_rules
            )
            c.processing_s, c.failure = outcome.processing_s, outcome.failure
            c.ready_at = now + outcome.processing_s
            return {"success": True, "message": "Upload successful."}

    def publish(self, account_id: str, params: dict[str, str]) -> Media:
        """POST /{ig-user-id}/media_publish."""
        with self.lock:
            for name in params:
                if name != "creation_id" and name not in TRANSPORT_PARAMS:
                    raise invalid_parameter(f"'{name}' is not a parameter of media_publish")
            cid = params.get("creation_id", "").strip()
            if not cid:
                raise invalid_parameter("creation_id is required")
            acct = self._account(account_id)
            c = self._containers.get(cid)
            if c is None or c.account != account_id:
                raise publishing_error(2207006, f"The media container {cid} could not be found.")
            c.publish_attempts += 1
            now = self.now()
            if c.is_carousel_item:
                raise GraphError(
                    100,
                    "(#100) A carousel item cannot be published on its own; publish the "
                    "carousel container that lists it.",
                    user_title="Carousel item",
                    user_msg="Publish the carousel container instead.",
                )
            status = c.status_code(now, self.container_ttl_s)
            if status == "PUBLISHED":
                return self._republish(c)
            if status == "EXPIRED":
                raise publishing_error(self.faults.expired_publish_error)
            if status == "ERROR" and c.failure:
                raise publishing_error(c.failure.subcode, c.failure.message, c.failure.code)
            if status == "IN_PROGRESS":
                raise publishing_error(2207027)
            for child_id in c.children:
                child = self._containers[child_id]
                if child.status_code(now, self.container_ttl_s) != "FINISHED":
                    raise publishing_error(2207020)
            is_story = c.slot.startswith("STORY")
            counts = not is_story or self.stories_count_against_quota
            if counts and self._quota_usage(acct, now, None) >= acct.quota_total:
                raise publishing_error(2207042)
            media = self._make_media(acct, c, now)
            if counts:
                acct.publish_times.append(now)
            return media

    def _republish(self, c: Container) -> Media:
        """media_publish of a PUBLISHED container: no second media, whatever the answer.

        Meta does not document this answer, so `republish_answer` chooses it (see the
        README): an error, or the first publish's media id again."""
        answer = self.faults.republish_answer
        if answer == "same_id" and c.media_id is not None:
            return self._media[c.media_id]
        if answer in ("2207008", "2207006"):
            raise publishing_error(int(answer))
        raise GraphError(
            100,
            "(#100) This media container has already been published.",
            user_title="Media already published",
            user_msg="Create a new container to publish again.",
        )

    def _make_media(self, acct: Account, c: Container, now: float) -> Media:
        mid = self._new_id(MEDIA_ID_BASE)
        product = {"REELS": "REELS", "STORY_IMAGE": "STORY", "STORY_VIDEO": "STORY"}.get(
            c.slot, "FEED"
        )
        media_type = (
            "CAROUSEL_ALBUM" if c.slot == "CAROUSEL" else "VIDEO" if c.media == "video" else "IMAGE"
        )
        shortcode = shortcode_for(mid)
        if product == "REELS":
            permalink = f"https://www.instagram.com/reel/{shortcode}/"
        elif product == "STORY":
            permalink = f"https://www.instagram.com/stories/{acct.username}/{mid}/"
        else:
            permalink = f"https://www.instagram.com/p/{shortcode}/"
        kept = {k: v for k, v in c.params.items() if k not in ("caption", "children")}
        media = Media(
            id=mid,
            account=acct.ig_user_id,
            username=acct.username,
            container_id=c.id,
            media_type=media_type,
            product_type=product,
            published_at=now,
            shortcode=shortcode,
            permalink=permalink,
            media_url=self._media_url(c, mid),
            caption=None if product == "STORY" else c.params.get("caption"),
            params=kept,
        )
        for child_id in c.children:
            child_c = self._containers[child_id]
            child_media = self._make_child_media(acct, child_c, mid, now)
            media.children.append(child_media.id)
        c.published_at, c.media_id = now, mid
        self._media[mid] = media
        return media

    def _make_child_media(self, acct: Account, c: Container, parent: str, now: float) -> Media:
        mid = self._new_id(MEDIA_ID_BASE)
        shortcode = shortcode_for(mid)
        media = Media(
            id=mid,
            account=acct.ig_user_id,
            username=acct.username,
            container_id=c.id,
            media_type="VIDEO" if c.media == "video" else "IMAGE",
            product_type="FEED",
            published_at=now,
            shortcode=shortcode,
            permalink=f"https://www.instagram.com/p/{shortcode}/",
            media_url=self._media_url(c, mid),
            parent_id=parent,
            params=dict(c.params),
        )
        c.published_at, c.media_id, c.parent_id = now, mid, parent
        self._media[mid] = media
        return media

    @staticmethod
    def _media_url(c: Container, mid: str) -> str | None:
        if c.url:
            return c.url
        if c.upload is not None:
            return f"https://scontent.cdninstagram.com/v/emu/{mid}.mp4"
        return None

    def quota(self, account_id: str, since: str | None = None) -> dict[str, Any]:
        """content_publishing_limit figures: usage in the rolling window (or since `since`).

        A `since` older than the window is clamped to it rather than refused: a client's clock
        and the emulator's (shifted by tests) need not agree.
        """
        with self.lock:
            acct = self._account(account_id)
            now = self.now()
            since_t: float | None = None
            if since:
                try:
                    since_t = float(since)
                except ValueError:
                    raise invalid_parameter("since must be a unix timestamp") from None
            return {
                "quota_usage": self._quota_usage(acct, now, since_t),
                "config": {
                    "quota_total": acct.quota_total,
                    "quota_duration": acct.quota_duration,
                },
            }

    def _quota_usage(self, acct: Account, now: float, since: float | None) -> int:
        start = now - acct.quota_duration
        if since is not None:
            start = max(start, since)
        return sum(1 for t in acct.publish_times if start < t <= now)

    def account_media(self, account_id: str, *, stories: bool) -> list[Media]:
        """Top-level media, newest first: feed and reels, or stories of the last 24 h."""
        with self.lock:
            self._account(account_id)
            now = self.now()
            out = [
                m
                for m in self._media.values()
                if m.account == account_id
                and m.is_top_level
                and (m.product_type == "STORY") == stories
                and (not stories or now - m.published_at < 86400)
            ]
            return out[::-1]
