"""Rules → the actions one stored event asks for. Pure: the caller stores them (in the same
transaction that marks the event handled, so a rule fires once per event).

Actions come in the order reply, private reply, message, hide: Meta refuses a reply to a
hidden comment, so hiding goes last.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from scheduler.config import RuleSettings, Settings
from scheduler.engage.events import WebhookEvent

ActionKind = Literal["reply", "private_reply", "message", "hide"]
ACTION_ORDER: tuple[ActionKind, ...] = ("reply", "private_reply", "message", "hide")


@dataclass(frozen=True)
class PlannedAction:
    """One outbound action a rule asks for.

    `target` is the comment id (reply, private_reply, hide) or the person's IGSID (message).
    `payload` holds what the call needs beyond the target: `text`; for a reply to a mention,
    also `mention: true` and `media_id`, because a comment on another account's media is
    answered through `/{ig-user-id}/mentions`, not `/{comment-id}/replies`.
    """

    key: str  # rule:<name>:<event id>:<action>
    source: str  # rule:<name>
    rule: str
    kind: ActionKind
    ig_account_id: str
    target: str
    payload: dict[str, Any] = field(default_factory=dict)


def account_names(settings: Settings) -> dict[str, str]:
    """ig user id → configured account name (what rules' `account:` and `events` show)."""
    return {a.ig_user_id: a.name for a in settings.accounts}


def rule_matches(rule: RuleSettings, event: WebhookEvent, account: str | None) -> bool:
    """Whether `rule` applies to `event`, received by the configured account `account`
    (None when the event's account is not configured)."""
    if event.is_echo or rule.on != event.kind:
        return False
    if rule.account is not None and rule.account != account:
        return False
    if rule.media is not None and rule.media != event.media_id:
        return False
    pattern = rule.pattern()
    if pattern is None:
        return True
    return any(s is not None and pattern.search(s) for s in (event.text, event.payload))


def plan_actions(
    rules: Sequence[RuleSettings], event: WebhookEvent, event_id: int | str, account: str | None
) -> list[PlannedAction]:
    """Every action the matching rules ask for: rule by rule in configuration order, and
    within a rule in the order reply, private_reply, message, hide. An action whose target
    the event lacks (a caption mention has no comment to reply to) is left out."""
    planned: list[PlannedAction] = []
    for rule in rules:
        if not rule_matches(rule, event, account):
            continue
        for kind in ACTION_ORDER:
            action = _one(rule, kind, event, event_id)
            if action is not None:
                planned.append(action)
    return planned


def _one(
    rule: RuleSettings, kind: ActionKind, event: WebhookEvent, event_id: int | str
) -> PlannedAction | None:
    payload: dict[str, Any]
    if kind == "hide":
        if not rule.hide or event.comment_id is None:
            return None
        target, payload = event.comment_id, {"hide": True}
    else:
        text = getattr(rule, kind)
        if text is None:
            return None
        if kind == "message":
            if event.sender_id is None:
                return None
            target, payload = event.sender_id, {"text": text}
        else:
            if event.comment_id is None:
                return None
            target, payload = event.comment_id, {"text": text}
            if kind == "reply" and event.kind == "mention":
                payload.update(mention=True, media_id=event.media_id)
    return PlannedAction(
        key=f"rule:{rule.name}:{event_id}:{kind}",
        source=f"rule:{rule.name}",
        rule=rule.name,
        kind=kind,
        ig_account_id=event.ig_account_id,
        target=target,
        payload=payload,
    )
