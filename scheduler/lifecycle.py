"""The post lifecycle as plain data and arithmetic: states, the transition table, lead
windows, polling, backoff.

No I/O here: the pipeline asks these functions what to do and when, so they can be tested
with a fake clock. Every change of a post's state is one named transition of `POSTS`; the
store refuses any other (TransitionNotAllowed). The table's shape (`Lifecycle`) is generic so
that another entity (e.g. engagement actions) gets its own table the same way.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Generic, TypeVar

from scheduler.config import LeadSettings, RetrySettings, StagingSettings


class State(StrEnum):
    PLANNED = "planned"  # waiting for its lead window to open
    STAGING = "staging"  # containers created, processing
    READY = "ready"  # every container FINISHED, waiting for the due time
    PUBLISHING = "publishing"  # media_publish sent (or about to be)
    VERIFYING = "verifying"  # outcome of a publish unknown: ask the container
    DEFERRED = "deferred"  # quota full or account throttled: waits for a slot
    WAITING = "waiting"  # account needs re-authorisation
    PUBLISHED = "published"
    FAILED = "failed"
    CANCELLED = "cancelled"


ACTIVE = frozenset(
    {
        State.PLANNED,
        State.STAGING,
        State.READY,
        State.PUBLISHING,
        State.VERIFYING,
        State.DEFERRED,
        State.WAITING,
    }
)
FINISHED = frozenset({State.PUBLISHED, State.FAILED, State.CANCELLED})
# a re-import may replace the spec of a post in these states (nothing has gone live)
EDITABLE = frozenset(
    {
        State.PLANNED,
        State.STAGING,
        State.READY,
        State.DEFERRED,
        State.WAITING,
        State.FAILED,
        State.CANCELLED,
    }
)


# --- the transition table ------------------------------------------------------------------

S = TypeVar("S", bound=StrEnum)  # an entity's states
N = TypeVar("N", bound=StrEnum)  # its transitions' names


class TransitionNotAllowed(Exception):
    """A transition the lifecycle table does not allow from the entity's current state."""

    def __init__(self, entity: str, ident: str, name: str, source: str, allowed_from: Iterable[str]) -> None:
        self.entity, self.ident, self.name, self.source = entity, ident, name, source
        froms = ", ".join(sorted(allowed_from)) or "nowhere"
        super().__init__(f"{entity} {ident}: transition {name} is not allowed from {source} "
                         f"(only from {froms})")


@dataclass(frozen=True)
class Transition(Generic[S, N]):
    name: N
    sources: frozenset[S]
    target: S
    cause: str  # what makes it happen, in words


class Lifecycle(Generic[S, N]):
    """One entity's allowed transitions: (from, to, name, cause)."""

    def __init__(self, entity: str, initial: S, transitions: Sequence[Transition[S, N]]) -> None:
        self.entity = entity
        self.initial = initial
        self.transitions = {t.name: t for t in transitions}
        if len(self.transitions) != len(transitions):
            raise ValueError(f"{entity}: transition names must be unique")

    def target(self, name: N, source: str, ident: str = "?") -> S:
        """The state `name` leads to from `source`, or TransitionNotAllowed."""
        t = self.transitions[name]
        if source not in t.sources:
            raise TransitionNotAllowed(self.entity, ident, name, source, t.sources)
        return t.target

    def allows(self, name: N, source: str) -> bool:
        return source in self.transitions[name].sources

    def edges(self) -> set[tuple[str, str, str]]:
        """Every (from, to, name) the table allows."""
        return {(str(s), str(t.target), str(t.name)) for t in self.transitions.values() for s in t.sources}


class PostMove(StrEnum):
    """The named transitions of a post (README "How a post is published")."""

    TO_PLANNED = "to_planned"
    TO_STAGING = "to_staging"
    TO_READY = "to_ready"
    TO_DEFERRED = "to_deferred"
    BEGIN_PUBLISH = "begin_publish"
    TO_VERIFYING = "to_verifying"
    MARK_PUBLISHED = "mark_published"
    TO_WAITING = "to_waiting"
    FAIL = "fail"
    CANCEL = "cancel"
    RETRY = "retry"
    REPLAN = "replan"


class Hold(StrEnum):
    """What a post waits for besides its time (posts.hold); cleared when its reason changes."""

    CONTAINER_BUDGET = "container_budget"  # staging.containers_per_day is used up


def _s(*states: State) -> frozenset[State]:
    return frozenset(states)


POSTS: Lifecycle[State, PostMove] = Lifecycle("post", State.PLANNED, [
    Transition(PostMove.TO_PLANNED, ACTIVE, State.PLANNED,
               "stage (again) from nothing: media checked, container expired or unusable, "
               "nothing was published, account authorised again"),
    Transition(PostMove.TO_STAGING,
               _s(State.PLANNED, State.STAGING, State.PUBLISHING, State.VERIFYING, State.WAITING),
               State.STAGING, "containers created or still processing (poll again)"),
    Transition(PostMove.TO_READY,
               _s(State.PLANNED, State.STAGING, State.READY, State.DEFERRED, State.PUBLISHING,
                  State.VERIFYING),
               State.READY, "every container FINISHED (an image made well ahead: not asked), "
               "or publish again once proven not live"),
    Transition(PostMove.TO_DEFERRED, _s(State.READY, State.DEFERRED, State.PUBLISHING), State.DEFERRED,
               "publishing quota full, or the account paused"),
    Transition(PostMove.BEGIN_PUBLISH, _s(State.READY, State.DEFERRED), State.PUBLISHING,
               "due, and a quota slot reserved"),
    Transition(PostMove.TO_VERIFYING,
               _s(State.PLANNED, State.STAGING, State.PUBLISHING, State.VERIFYING, State.WAITING),
               State.VERIFYING, "publish outcome unknown: ask the container"),
    Transition(PostMove.MARK_PUBLISHED,
               _s(State.PLANNED, State.STAGING, State.PUBLISHING, State.VERIFYING), State.PUBLISHED,
               "media_publish answered, or the container says PUBLISHED"),
    Transition(PostMove.TO_WAITING, ACTIVE, State.WAITING, "the account needs re-authorisation"),
    Transition(PostMove.FAIL, ACTIVE, State.FAILED, "a permanent error, or out of retries"),
    Transition(PostMove.CANCEL, _s(State.PLANNED, State.STAGING, State.READY, State.DEFERRED, State.WAITING),
               State.CANCELLED, "igsched cancel"),
    Transition(PostMove.RETRY, _s(State.FAILED, State.CANCELLED), State.PLANNED, "igsched retry"),
    Transition(PostMove.REPLAN, EDITABLE, State.PLANNED, "a re-import changed the post"),
])  # fmt: skip


def lead_seconds(kind: str, lead: LeadSettings) -> float:
    return float(getattr(lead, kind))


def stage_at(due_at: datetime, kind: str, lead: LeadSettings) -> datetime:
    """When to create the containers of a post due at `due_at`."""
    return due_at - timedelta(seconds=lead_seconds(kind, lead))


def backoff_s(attempt: int, retries: RetrySettings) -> float:
    """Exponential backoff: attempt 1 → base, 2 → 2·base, … capped."""
    return float(min(retries.cap_s, retries.base_s * (2 ** max(0, attempt - 1))))


def retries_left(attempt: int, retries: RetrySettings) -> bool:
    return attempt < retries.max_tries


OVERDUE_POLL_FRACTION = 8.0  # overdue: wait 1/8 of the time the post is late (see poll_delay_s)
# with time to spare, the first status check waits until processing is very likely over
# (this many times the expected processing time), so one check usually tells
PATIENT_FIRST_CHECK = 4.0


def first_check_s(lead_left_s: float, expected_processing_s: float) -> float:
    """How long after its creation a container is first asked: at the expected processing
    time when its post is due soon; with time to spare, later (PATIENT_FIRST_CHECK times the
    expected time), but never past half the time to the due time, so a container that
    failed is seen early enough to make it again."""
    patient = min(PATIENT_FIRST_CHECK * expected_processing_s, lead_left_s / 2)
    return max(expected_processing_s, patient)


def poll_delay_s(
    now: datetime,
    due_at: datetime,
    created_at: datetime,
    expected_processing_s: float,
    staging: StagingSettings,
    spacing: float = 1.0,
) -> float:
    """How long to wait before asking a container's status again.

    First check when processing should be over (`first_check_s`); then sparse while the due time is far
    (Meta suggests about once a minute), dense as it approaches, so the post is published the
    moment the container is ready. `spacing` > 1 stretches waits when usage is high — but
    never so much that a due post is checked late.

    Past the due time the post is late already: check every `poll_min_s` at first, then wait
    an eighth of the time it is overdue (at most `poll_max_s`), so a container that finishes
    late is published at most about 12 % of its lateness after it finished, and one stuck in
    processing is not asked every second for hours.
    """
    age = (now - created_at).total_seconds()
    until_due = (due_at - now).total_seconds()
    if until_due <= 0:
        return max(staging.poll_min_s, min(staging.poll_max_s, -until_due / OVERDUE_POLL_FRACTION))
    first = first_check_s((due_at - created_at).total_seconds(), expected_processing_s)
    if age < first:
        delay = first - age
    else:
        delay = max(staging.poll_min_s, min(staging.poll_max_s, age / 2))
    delay *= spacing
    # denser as the due time approaches: never wait more than half of what is left
    return max(staging.poll_min_s, min(delay, until_due / 2))


# --- engagement actions (README "Engagement") ----------------------------------------------


class ActionState(StrEnum):
    PENDING = "pending"  # planned: waits for its time (next_action_at)
    SENDING = "sending"  # the call is out (or about to be): its answer decides
    DONE = "done"
    FAILED = "failed"  # Meta refused, a limit refused, or out of retries; `reason` says which
    UNKNOWN = "unknown"  # a DM, private reply or reply to a mention whose answer was lost: never re-sent by itself
    DEFERRED = "deferred"  # a budget or a pause: waits with its reason until it frees


class ActionMove(StrEnum):
    """The named transitions of an action (README "Engagement")."""

    BEGIN_SEND = "begin_send"
    MARK_DONE = "mark_done"
    TO_PENDING = "to_pending"
    DEFER = "defer"
    TO_UNKNOWN = "to_unknown"
    FAIL = "fail"
    RETRY = "retry"


ACTION_ACTIVE = frozenset({ActionState.PENDING, ActionState.SENDING, ActionState.DEFERRED})
ACTION_FINISHED = frozenset({ActionState.DONE, ActionState.FAILED, ActionState.UNKNOWN})


def _a(*states: ActionState) -> frozenset[ActionState]:
    return frozenset(states)


ACTIONS: Lifecycle[ActionState, ActionMove] = Lifecycle("action", ActionState.PENDING, [
    Transition(ActionMove.BEGIN_SEND, _a(ActionState.PENDING, ActionState.DEFERRED, ActionState.SENDING),
               ActionState.SENDING, "due, within its budgets: the call goes out (again only when it may repeat)"),
    Transition(ActionMove.MARK_DONE, _a(ActionState.SENDING), ActionState.DONE,
               "Meta answered, or the lost answer's reply was found"),
    Transition(ActionMove.TO_PENDING, _a(ActionState.SENDING, ActionState.DEFERRED), ActionState.PENDING,
               "a transient error or a lost answer of a call that may repeat: try again after a backoff"),
    Transition(ActionMove.DEFER, _a(ActionState.PENDING, ActionState.SENDING, ActionState.DEFERRED),
               ActionState.DEFERRED, "over a budget, the account paused or not usable: waits until it frees"),
    Transition(ActionMove.TO_UNKNOWN, _a(ActionState.SENDING), ActionState.UNKNOWN,
               "the answer to a DM, a private reply or a reply to a mention was lost: it may have arrived; "
               "not re-sent by itself"),
    Transition(ActionMove.FAIL, ACTION_ACTIVE, ActionState.FAILED,
               "Meta refused it, a limit refused it, or out of retries"),
    Transition(ActionMove.RETRY, _a(ActionState.FAILED, ActionState.UNKNOWN), ActionState.PENDING,
               "igsched actions retry KEY: sent again on a person's word"),
])  # fmt: skip
