"""The app's webhook subscription for an account: `POST /{ig-user-id}/subscribed_apps`.

`SubscriptionMixin` is a base of `GraphClient` (which provides `request`), like the
engagement calls, so the call is recorded and its errors classified as every other call.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import quote

from scheduler.graph.engagement import Requester


class SubscriptionMixin:
    request: Requester

    async def subscribe_app(self, ig_user_id: str, token: str, fields: Sequence[str]) -> bool:
        """Ask Meta to send this account's webhook `fields` (comments, messages, …) to the
        app's callback URL → Meta's `success`."""
        if not fields:
            raise ValueError("subscribe_app needs at least one field")
        body, _ = await self.request(
            "POST",
            f"{quote(ig_user_id, safe='')}/subscribed_apps",
            token,
            data={"subscribed_fields": ",".join(fields)},
            endpoint_name="POST /{ig-user-id}/subscribed_apps",
            require=("success",),
        )
        return body["success"] is True
