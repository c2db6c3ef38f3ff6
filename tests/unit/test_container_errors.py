"""Pure tests: a container's ERROR status text → retry, re-create or fail with Meta's words."""

from __future__ import annotations

import pytest

from scheduler.graph.container_errors import classify_container_error, container_error_subcode
from scheduler.graph.errors import ErrorClass

C = ErrorClass


@pytest.mark.parametrize(
    ("subcode", "expected"),
    [
        (2207001, C.TRANSIENT),
        (2207003, C.TRANSIENT),
        (2207032, C.RECREATE),
        (2207053, C.RECREATE),
        (2207020, C.RECREATE),
        (2207052, C.PERMANENT),
        (2207026, C.PERMANENT),
        (2207005, C.PERMANENT),
        (2207999, C.PERMANENT),
    ],
)
def test_real_format(subcode: int, expected: ErrorClass) -> None:
    text = f"Error: Media upload has failed with error code {subcode}"
    verdict = classify_container_error(text)
    assert verdict.error_class is expected
    assert verdict.subcode == subcode
    assert verdict.message == text  # Meta's words, for the post's reason
    assert verdict.retry is (expected is C.TRANSIENT)
    assert verdict.recreate is (expected is C.RECREATE)


@pytest.mark.parametrize(
    ("text", "subcode", "expected"),
    [
        ("Error: 2207001 Instagram server error. Try again.", 2207001, C.TRANSIENT),  # old emulator
        ("Error: 2207053 Unknown upload error.", 2207053, C.RECREATE),
        ("Error: 2207052 The media could not be fetched from the URL.", 2207052, C.PERMANENT),
        ("ERROR (subcode=2207032): something", 2207032, C.RECREATE),
        ("error code:2207003.", 2207003, C.TRANSIENT),
        ("  Error:\n Media upload has failed with error code 2207020  ", 2207020, C.RECREATE),
    ],
)
def test_other_formats(text: str, subcode: int, expected: ErrorClass) -> None:
    verdict = classify_container_error(text)
    assert (verdict.subcode, verdict.error_class) == (subcode, expected)


@pytest.mark.parametrize(
    "text",
    [
        None,
        "",
        "Error",
        "Error: Media ID is not available",
        "Error: code 22070011 is too long",  # 8 digits: not a subcode
        "Error: code 12207001",  # digits before it: not a subcode
        "Error: 9004",
        "Error: 2207",
    ],
)
def test_without_a_subcode_it_fails_with_metas_words(text: str | None) -> None:
    verdict = classify_container_error(text)
    assert verdict.error_class is C.PERMANENT
    assert verdict.subcode is None
    assert verdict.message == (" ".join(text.split()) if text and text.strip() else
                               "ERROR (Meta gave no reason)")


def test_first_subcode_wins_and_words_are_bounded() -> None:
    text = "Error: 2207052 then 2207001 " + "x" * 5000
    verdict = classify_container_error(text)
    assert verdict.subcode == 2207052 and verdict.error_class is C.PERMANENT
    assert len(verdict.message) == 500


def test_subcode_reader_ignores_non_text() -> None:
    assert container_error_subcode(2207001) is None  # type: ignore[arg-type]
    assert container_error_subcode("Error: 2207001") == 2207001
