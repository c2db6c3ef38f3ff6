"""Meta's messaging refusals: final for the message (not the token's fault), said in words."""

from __future__ import annotations

import pytest

from scheduler.graph import ErrorClass, GraphError, classify
from scheduler.graph.errors import messaging_refusal


@pytest.mark.parametrize(
    ("code", "subcode", "label", "reason"),
    [
        (551, 1545041, "person unavailable", "not available"),
        (200, 2534041, "DMs disabled", "does not accept messages"),
        (10, 2534022, "outside the messaging window", "outside the messaging window"),
    ],
)
def test_refusals_are_permanent_with_a_clear_reason(
    code: int, subcode: int, label: str, reason: str
) -> None:
    assert classify(code, subcode, None, 400) is ErrorClass.PERMANENT
    err = GraphError.from_body(
        {"message": "refused", "code": code, "error_subcode": subcode, "is_transient": False},
        http_status=400,
    )
    assert err.error_class is ErrorClass.PERMANENT
    assert f"({label})" in str(err)
    refusal = messaging_refusal(err)
    assert refusal is not None and reason in refusal


def test_551_without_subcode_and_the_families_around_it() -> None:
    assert classify(551, None, None, 400) is ErrorClass.PERMANENT
    assert messaging_refusal(GraphError("x", code=551)) is not None
    # The same codes without a messaging subcode keep their meaning: a permission problem.
    assert classify(10, None, None, 400) is ErrorClass.AUTH
    assert classify(200, None, None, 400) is ErrorClass.AUTH
    assert messaging_refusal(GraphError("x", code=10)) is None
    assert messaging_refusal(GraphError("x", http_status=502)) is None


@pytest.mark.parametrize("code", [613, 80006, 80002, 17, 32])
def test_send_api_throttling_is_throttling(code: int) -> None:
    assert classify(code, None, True, 400) is ErrorClass.THROTTLED
