"""`POST /{ig-user-id}/subscribed_apps?subscribed_fields=…`: which webhook fields the app
receives for an account (kept, so tests and users can see what was asked)."""

from __future__ import annotations

from typing import Any

from .core import StateCore
from .errors import invalid_parameter

# the fields an Instagram account's app subscription may name (Meta's webhook fields)
SUBSCRIBABLE_FIELDS = frozenset({
    "comments", "live_comments", "mentions", "messages", "messaging_postbacks",
    "messaging_optins", "messaging_seen", "messaging_referral", "messaging_handover",
    "message_reactions", "message_edit", "story_insights", "standby",
})


class SubscriptionOps(StateCore):
    """`POST /{ig-user-id}/subscribed_apps?subscribed_fields=…`: which webhook fields the app
    receives for an account (kept, so tests and users can see what was asked)."""

    def _reset_model(self) -> None:
        super()._reset_model()
        self._subscriptions: dict[str, list[str]] = {}

    def subscribe_app(self, ig_user_id: str, params: dict[str, str]) -> dict[str, Any]:
        raw = params.get("subscribed_fields", "")
        fields = [f.strip() for f in raw.split(",") if f.strip()]
        if not fields:
            raise invalid_parameter("subscribed_fields must name at least one field")
        unknown = sorted(set(fields) - SUBSCRIBABLE_FIELDS)
        if unknown:
            raise invalid_parameter(f"subscribed_fields[{unknown[0]}] is not a valid field")
        with self.lock:
            self._account(ig_user_id)
            self._subscriptions[ig_user_id] = fields
        return {"success": True}

    def subscribed_fields(self, ig_user_id: str) -> list[str]:
        with self.lock:
            return list(self._subscriptions.get(ig_user_id, []))
