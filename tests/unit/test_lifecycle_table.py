"""The lifecycle table itself, and the README's diagram and table checked against it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from scheduler.lifecycle import (
    ACTION_FINISHED,
    ACTIONS,
    ACTIVE,
    EDITABLE,
    FINISHED,
    POSTS,
    ActionMove,
    ActionState,
    PostMove,
    State,
    TransitionNotAllowed,
)

README = Path(__file__).resolve().parents[2] / "README.md"


def _section() -> str:
    text = README.read_text()
    start = text.index("## How a post is published")
    return text[start:text.index("\n## ", start + 1)]


def test_every_transition_name_is_in_the_table_and_every_state_is_reachable() -> None:
    assert set(POSTS.transitions) == set(PostMove)
    targets = {t.target for t in POSTS.transitions.values()}
    sources = set().union(*(t.sources for t in POSTS.transitions.values()))
    assert targets | {POSTS.initial} == set(State)
    assert set(State) - {State.PUBLISHED} <= sources  # only `published` is never left


def test_a_post_that_may_be_live_is_never_cancelled_or_replanned() -> None:
    for move in (PostMove.CANCEL, PostMove.REPLAN):
        assert not POSTS.transitions[move].sources & {State.PUBLISHING, State.VERIFYING, State.PUBLISHED}
    assert POSTS.transitions[PostMove.REPLAN].sources == EDITABLE
    for t in POSTS.transitions.values():  # finished posts come back only by the user's hand
        if t.sources & FINISHED:
            assert t.name in (PostMove.RETRY, PostMove.REPLAN)


@pytest.mark.parametrize("source", list(State))
def test_the_table_answers_for_every_state(source: State) -> None:
    for move, t in POSTS.transitions.items():
        if source in t.sources:
            assert POSTS.target(move, source) == t.target
        else:
            with pytest.raises(TransitionNotAllowed, match=f"{move} is not allowed from {source}"):
                POSTS.target(move, source, "k")
    assert (source in ACTIVE) == POSTS.allows(PostMove.FAIL, source)


def test_readme_table_matches_the_lifecycle_table() -> None:
    rows = re.findall(r"^\| `(\w+)` \| (.+?) \| `(\w+)` \| .+ \|$", _section(), re.M)
    readme = {(name, frozenset(re.findall(r"`(\w+)`", froms)), to) for name, froms, to in rows}
    code = {(str(t.name), frozenset(str(s) for s in t.sources), str(t.target)) for t in POSTS.transitions.values()}
    assert readme == code


def test_readme_diagram_shows_only_allowed_transitions_and_every_state() -> None:
    block = re.search(r"```mermaid\n(.*?)```", _section(), re.S)
    assert block is not None
    edges = re.findall(r"^\s*(\S+) --> (\S+)(?: : (\w+))?$", block.group(1), re.M)
    allowed = POSTS.edges()
    shown_states = set()
    for src, dst, name in edges:
        if src == "[*]":
            assert (dst, name) == (POSTS.initial, "enqueue")
        elif dst != "[*]":
            assert (src, dst, name) in allowed, (src, dst, name)
        shown_states |= {src, dst} - {"[*]"}
    assert shown_states == {str(s) for s in State}


# --- actions ---------------------------------------------------------------------------------


def _actions_section() -> str:
    text = README.read_text()
    start = text.index("### How an action is sent")
    return text[start:text.index("\n#", start + 1)]


def test_every_action_transition_is_in_the_table_and_every_state_is_reachable() -> None:
    assert set(ACTIONS.transitions) == set(ActionMove)
    targets = {t.target for t in ACTIONS.transitions.values()}
    assert targets | {ACTIONS.initial} == set(ActionState)
    sources = set().union(*(t.sources for t in ACTIONS.transitions.values()))
    assert sources == set(ActionState) - {ActionState.DONE}  # only `done` is never left


def test_an_unknown_or_failed_action_comes_back_only_by_a_persons_word() -> None:
    for t in ACTIONS.transitions.values():
        if t.sources & ACTION_FINISHED:
            assert t.name == ActionMove.RETRY
    assert ACTIONS.transitions[ActionMove.TO_UNKNOWN].sources == {ActionState.SENDING}


def test_readme_table_matches_the_actions_table() -> None:
    rows = re.findall(r"^\| `(\w+)` \| (.+?) \| `(\w+)` \| .+ \|$", _actions_section(), re.M)
    readme = {(name, frozenset(re.findall(r"`(\w+)`", froms)), to) for name, froms, to in rows}
    code = {(str(t.name), frozenset(str(s) for s in t.sources), str(t.target))
            for t in ACTIONS.transitions.values()}
    assert readme == code
