"""How many posts the daemon claims at a time (daemon.claim_room): for its free workers and as
many again, but no claim of one or two while more than half a worker set of publishes waits."""

from __future__ import annotations

import pytest

from scheduler.daemon import claim_room
from scheduler.lifecycle import State

READY, DEFERRED, STAGING, PUBLISHED = State.READY, State.DEFERRED, State.STAGING, State.PUBLISHED


def test_idle_daemon_claims_two_worker_sets() -> None:
    assert claim_room(16, 0, []) == 32


def test_full_room_claims_nothing() -> None:
    assert claim_room(16, 16, [READY] * 16) == 0


@pytest.mark.parametrize("queued", [9, 10, 15])
def test_more_than_half_a_worker_set_of_publishes_waiting_sends_no_claim(queued: int) -> None:
    assert claim_room(16, 16, [READY] * (queued - 1) + [DEFERRED]) == 0


@pytest.mark.parametrize("queued", [0, 1, 8])
def test_half_the_room_free_is_claimed_at_once(queued: int) -> None:
    assert claim_room(16, 16, [READY] * queued) == 16 - queued


@pytest.mark.parametrize("other", [STAGING, PUBLISHED])
def test_a_queue_holding_another_step_claims_as_before(other: State) -> None:
    # a publish due now may be claimable and would go ahead of the staging or follow-up
    assert claim_room(16, 16, [READY] * 14 + [other]) == 1


def test_a_free_worker_is_never_left_without_a_claim() -> None:
    for workers in range(1, 70):
        for running in range(workers):  # a worker free: _start_queued emptied the queue
            assert claim_room(workers, running, []) >= workers


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_few_workers_claim_whatever_room_there_is(workers: int) -> None:
    # half a worker set is at most one post: a claim of one is already the batch
    assert claim_room(workers, workers, [READY] * (workers - 1)) == 1
