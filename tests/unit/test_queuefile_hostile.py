"""Hostile queue files (README "Security"): whatever a file holds, validation ends in problems
that name the file, post and field, never in a traceback; and a path in a file never reaches
a file outside the allowed media folders."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from scheduler.problems import Problem
from tests.unit.test_queuefile import make_settings, only_problem, parse, posts, problems_of

UTC_HEAD = "account: shop\n"


@pytest.mark.parametrize(
    ("written", "message"),
    [
        ("2027-02-30 10:00:00Z", "day is out of range for month"),
        ("2027-01-01 10:00:60Z", "second must be in 0..59"),
        ("2027-13-01 10:00:00Z", "month must be in 1..12"),
        ("2027-01-01 10:00:00+25:00", "the UTC offset +25:00 is not valid"),
        ("!!timestamp garbage", "at 'garbage' has no time of day"),
        ("!!int abc", "at 'abc' has no time of day"),
        ("!!float nope", "at 'nope' has no time of day"),
        ("!!bool maybe", "at 'maybe' has no time of day"),
        ("9999-12-31 23:00:00-05:00", "outside the range of times that can be used"),
        ("0001-01-01 00:30:00+01:00", "outside the range of times that can be used"),
        ('"9999-12-31T23:00:00-05:00"', "outside the range of times that can be used"),
    ],
)
def test_times_that_crashed_the_parser_are_located_problems(written: str, message: str) -> None:
    p = only_problem(posts(f"at: {written}\nimage: https://cdn.example.com/a.jpg", head=UTC_HEAD))
    assert (p.post, p.field) == ("post 1", "at")
    assert message in p.message


@pytest.mark.parametrize(
    ("field", "written"),
    [
        ("thumb_offset_ms", "!!int 12x"),
        ("thumb_offset_ms", "!!float 1.2.3"),
        ("share_to_feed", "!!bool sometimes"),
        ("thumb_offset_ms", "1" * 5000),  # beyond Python's int-from-text limit
    ],
)
def test_tags_on_garbage_are_field_problems(field: str, written: str) -> None:
    p = only_problem(posts(f"at: now\nreel: https://cdn.example.com/r.mp4\n{field}: {written}"))
    assert (p.post, p.field) == ("post 1", field)
    assert len(str(p)) <= 600  # a long value is not echoed in full


def test_tag_on_a_list_is_a_yaml_problem_with_its_line() -> None:
    p = only_problem(posts("at: now\nimage: !!int [1, 2]"))
    assert p.field is None and "line 5" in p.message and "!!int must tag a single value" in p.message


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("https://[::1/x.jpg", "is not a valid URL"),
        ("https://cdn.example.com:99999/x.jpg", "Port out of range"),
        ("https://user:pass@cdn.example.com/x.jpg", "contains a user name or password"),
        ("https://user@cdn.example.com/x.jpg", "contains a user name or password"),
    ],
)
def test_url_problems(url: str, message: str) -> None:
    p = only_problem(posts(f"at: now\nimage: {url}"))
    assert p.field == "image" and message in p.message
    assert "pass@" not in p.message or "user:pass" in url  # shown as written, never resolved


@pytest.mark.parametrize(
    ("written", "message"),
    [
        ('"before\\0after"', "contains the control character U+0000 at character 7"),
        ('"a lone \\ud800 surrogate"', "contains a lone surrogate (\\ud800) at character 8"),
        ('"bell\\a"', "contains the control character U+0007"),
    ],
)
def test_caption_with_nul_or_surrogate(written: str, message: str) -> None:
    p = only_problem(posts(f"at: now\nimage: https://cdn.example.com/a.jpg\ncaption: {written}"))
    assert p.field == "caption" and message in p.message
    shown = str(p)
    shown.encode("utf-8")  # printable: no surrogate, no NUL survives into the message
    assert "\x00" not in shown and "\x07" not in shown


def test_caption_with_newlines_and_tabs_is_fine() -> None:
    (spec,) = parse(posts('at: now\nimage: https://cdn.example.com/a.jpg\ncaption: "a\\n\\tb"'))
    assert spec.caption == "a\n\tb"


def test_problem_text_escapes_what_it_quotes() -> None:
    p = Problem("q.yaml", "unknown key 'a\x1b[31mred\ud800'", "post 1", "x")
    assert str(p) == "q.yaml: post 1: field 'x': unknown key 'a\\x1b[31mred\\ud800'"


# --------------------------------------------------------------------------- local files


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    outside = tmp_path / "outside"
    outside.mkdir()
    f = outside / "secret.mp4"
    f.write_bytes(b"secret")
    f.chmod(0o600)
    return f


@pytest.mark.parametrize(
    ("written", "message"),
    [
        ("/etc/shadow", "is outside the folders local media may come from"),
        ("../../../../etc/passwd", "is outside the folders local media may come from"),
        ("/proc/self/environ", "is a system file"),
        ("/dev/zero", "is a system file"),
        ("../outside/secret.mp4", "is outside the folders local media may come from"),
        ("noext", "must be an .mp4 or .mov video file (its extension is missing)"),
        ("clip.mp4", "is a symbolic link"),
        ("fifo.mp4", "is not a regular file"),
    ],
)
def test_local_files_outside_the_sandbox_are_refused(
    tmp_path: Path, secret: Path, written: str, message: str
) -> None:
    queue = tmp_path / "queue"
    queue.mkdir()
    (queue / "noext").write_bytes(b"x")
    (queue / "clip.mp4").symlink_to(secret)
    os.mkfifo(queue / "fifo.mp4")
    p = only_problem(posts(f"at: now\nreel: {written}"), base_dir=queue)
    assert p.field == "reel" and message in p.message
    assert "secret" not in p.message or "secret.mp4" in written


def test_a_symlinked_folder_does_not_lead_outside(tmp_path: Path, secret: Path) -> None:
    queue = tmp_path / "queue"
    queue.mkdir()
    (queue / "clips").symlink_to(secret.parent)
    p = only_problem(posts("at: now\nreel: clips/secret.mp4"), base_dir=queue)
    assert "is outside the folders local media may come from" in p.message


def test_media_dirs_widen_and_narrow_where_videos_may_come_from(tmp_path: Path, secret: Path) -> None:
    queue = tmp_path / "queue"
    queue.mkdir()
    (queue / "here.mp4").write_bytes(b"x")
    wide = make_settings(media_dirs=[str(secret.parent)])
    (spec,) = parse(posts(f"at: now\nreel: {secret}"), base_dir=queue, settings=wide)
    assert spec.media[0].source == str(secret)
    # with media_dirs set, the queue file's own folder is no longer allowed
    with pytest.raises(Exception, match="outside the folders"):
        parse(posts("at: now\nreel: here.mp4"), base_dir=queue, settings=wide)


def test_video_below_the_queue_folder_is_fine(tmp_path: Path) -> None:
    (tmp_path / "media").mkdir()
    (tmp_path / "media" / "clip.MOV").write_bytes(b"x")
    (spec,) = parse(posts("at: now\nreel: media/clip.MOV"), base_dir=tmp_path)
    assert spec.media[0].source == str(tmp_path / "media" / "clip.MOV")


def test_nul_in_a_local_path(tmp_path: Path) -> None:
    found = problems_of(posts('at: now\nreel: "a\\0.mp4"'), base_dir=tmp_path)
    assert [(p.field, "U+0000" in p.message) for p in found] == [("reel", True)]
