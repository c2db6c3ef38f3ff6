"""Queue files (README "Queue files"): good files for every kind, stable keys, and bad input of many
kinds, each reported with the file, the post, the field and a message a person can act on."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest

from scheduler.config import Settings, settings_from_dict
from scheduler.models import MediaItem, PostSpec, UserTag
from scheduler.problems import InvalidInput, Problem
from scheduler.queuefile import load_queue_file, parse_queue_text

DATA = Path(__file__).resolve().parents[1] / "data" / "queue"
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
HEAD = "account: shop\ntimezone: Europe/Berlin\n"
IMG = "https://cdn.example.com/a.jpg"
VID = "https://cdn.example.com/a.mp4"
IMG2 = "https://cdn.example.com/b.jpg"


def make_settings(**queue: object) -> Settings:
    return settings_from_dict(
        {
            "accounts": [
                {"name": "shop", "ig_user_id": "1784", "token_env": "T_SHOP"},
                {"name": "studio", "ig_user_id": "1785", "token_env": "T_STUDIO"},
            ],
            "queue": queue,
        },
        "test",
    )


SETTINGS = make_settings()


def parse(text: str, base_dir: Path | None = None, settings: Settings = SETTINGS) -> list[PostSpec]:
    return parse_queue_text(text, "q.yaml", settings, NOW, base_dir=base_dir)


def posts(*bodies: str, head: str = HEAD) -> str:
    """A queue file with one post per body (each body: YAML lines of that post)."""
    out = head + "posts:\n"
    for body in bodies:
        lines = textwrap.dedent(body).strip().splitlines()
        out += "  - " + "\n    ".join(lines) + "\n"
    return out


def problems_of(text: str, base_dir: Path | None = None) -> list[Problem]:
    with pytest.raises(InvalidInput) as info:
        parse(text, base_dir)
    assert all(p.file == "q.yaml" for p in info.value.problems)
    return info.value.problems


def only_problem(text: str, base_dir: Path | None = None) -> Problem:
    found = problems_of(text, base_dir)
    assert len(found) == 1, "\n".join(map(str, found))
    return found[0]


# --------------------------------------------------------------------------- good files


def test_design_example_file_every_kind() -> None:
    specs = load_queue_file(DATA / "all_kinds.yaml", SETTINGS, NOW)
    image, reel, local_reel, story_img, story_vid, story_now, carousel = specs
    assert all(s.source_file == str(DATA / "all_kinds.yaml") for s in specs)

    assert image.key == "spring-teaser" and image.key_explicit
    assert image.kind == "image" and image.account == "shop"
    assert image.at == datetime(2026, 12, 1, 8, 0, tzinfo=UTC)  # 09:00 Berlin in winter
    assert image.media == (
        MediaItem(
            "image",
            "https://cdn.example.com/teaser.jpg",
            "A bottle on a sunny table",
            (UserTag("partner", 0.5, 0.4),),
        ),
    )
    assert image.caption == "Spring is coming. #launch @partner"
    assert image.location_id == "110123456789"
    assert image.collaborators == ("partner", "friend.shop")  # leading @ stripped
    assert image.first_comment == "More at the link in bio"

    assert reel.kind == "reel" and not reel.key_explicit and reel.key.startswith("h-")
    assert reel.at == datetime(2026, 12, 1, 17, 30, tzinfo=UTC)
    assert reel.media == (
        MediaItem("video", "https://cdn.example.com/teaser.mp4", None, (UserTag("partner"),)),
    )
    assert reel.cover_url == "https://cdn.example.com/cover.jpg"
    assert reel.thumb_offset_ms is None
    assert reel.share_to_feed is True
    assert reel.audio_name == "Original sound"
    assert reel.location_id == "110123456789"  # written as a number, kept as text
    assert reel.trial_graduation == "SS_PERFORMANCE"
    assert reel.first_comment == "Thanks for watching"

    assert local_reel.account == "studio"
    assert local_reel.at == datetime(2026, 12, 1, 12, 15, 30, tzinfo=UTC)  # New York, EST
    assert local_reel.media[0].source == str(DATA / "media" / "clip.mp4")
    assert local_reel.media[0].is_local
    assert local_reel.thumb_offset_ms == 1500 and local_reel.share_to_feed is False
    assert local_reel.trial_graduation == "MANUAL"

    assert story_img.kind == "story" and story_img.media[0].kind == "image"
    assert story_img.media[0].user_tags == (UserTag("partner", 0.2, 0.3),)
    assert story_img.caption is None and story_img.collaborators == ()
    assert story_vid.media[0] == MediaItem("video", "https://cdn.example.com/render?id=7")
    assert story_vid.at == datetime(2026, 12, 2, 20, 0, tzinfo=UTC)
    assert story_now.at is None and story_now.media[0].kind == "video"

    assert carousel.kind == "carousel"
    assert carousel.at == datetime(2026, 12, 3, 11, 0, tzinfo=UTC)
    assert [m.kind for m in carousel.media] == ["image", "video", "image", "video", "image"]
    assert carousel.media[2] == MediaItem(
        "image", "https://cdn.example.com/3.jpg", "Close-up", (UserTag("a", 0.1, 0.9),)
    )
    assert carousel.media[3].source == str(DATA / "media" / "clip.mp4")
    assert carousel.caption == "Three looks" and carousel.collaborators == ("partner",)
    assert carousel.first_comment == "Which one?"


def test_same_file_twice_gives_the_same_keys() -> None:
    first = load_queue_file(DATA / "all_kinds.yaml", SETTINGS, NOW)
    second = load_queue_file(DATA / "all_kinds.yaml", SETTINGS, NOW)
    assert [s.key for s in first] == [s.key for s in second]
    assert len({s.key for s in first}) == len(first)
    assert first == second


def test_derived_key_follows_content_not_position() -> None:
    a = posts(f"at: 2026-12-01 09:00\nimage: {IMG}\ncaption: one")
    b = posts(
        f"at: 2026-12-01 09:00\nimage: {IMG2}\ncaption: other",
        f"at: 2026-12-01 09:00\nimage: {IMG}\ncaption: one",
    )
    key_a = parse(a)[0].key
    assert parse(b)[1].key == key_a
    assert parse(b)[0].key != key_a
    changed = posts(f"at: 2026-12-01 09:00\nimage: {IMG}\ncaption: two")
    assert parse(changed)[0].key != key_a


def test_specs_survive_the_store_round_trip() -> None:
    for spec in load_queue_file(DATA / "all_kinds.yaml", SETTINGS, NOW):
        assert PostSpec.from_content(spec.content()) == spec


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ('"2026-12-01T18:30:00+01:00"', datetime(2026, 12, 1, 17, 30, tzinfo=UTC)),
        ("2026-12-01T18:30:00+01:00", datetime(2026, 12, 1, 17, 30, tzinfo=UTC)),  # YAML datetime
        ("2026-12-01 18:30:00", datetime(2026, 12, 1, 17, 30, tzinfo=UTC)),  # naive YAML datetime
        ("2026-12-01 18:30", datetime(2026, 12, 1, 17, 30, tzinfo=UTC)),
        ("2026-12-01T18:30", datetime(2026, 12, 1, 17, 30, tzinfo=UTC)),
        ('"2026-12-01 9:05"', datetime(2026, 12, 1, 8, 5, tzinfo=UTC)),
        ('"2026-12-01T17:30:00Z"', datetime(2026, 12, 1, 17, 30, tzinfo=UTC)),
        ("2026-07-01 18:30", datetime(2026, 7, 1, 16, 30, tzinfo=UTC)),  # summer time
        ("2026-12-01 18:30:15.250", datetime(2026, 12, 1, 17, 30, 15, 250000, tzinfo=UTC)),
        ("now", None),
        ("NOW", None),
        ("2026-06-01 13:59:30", datetime(2026, 6, 1, 11, 59, 30, tzinfo=UTC)),  # within grace
    ],
)
def test_time_forms(written: str, expected: datetime | None) -> None:
    (spec,) = parse(posts(f"at: {written}\nimage: {IMG}"))
    assert spec.at == expected
    assert spec.at is None or spec.at.tzinfo == UTC


def test_post_timezone_and_account_override_the_file() -> None:
    (spec,) = parse(
        posts(f"at: 2026-12-01 09:00\ntimezone: Asia/Tokyo\naccount: studio\nimage: {IMG}")
    )
    assert spec.at == datetime(2026, 12, 1, 0, 0, tzinfo=UTC)
    assert spec.account == "studio"


def test_times_with_offset_need_no_timezone() -> None:
    (spec,) = parse(posts(f"at: 2026-12-01T09:00:00-05:00\nimage: {IMG}", head="account: shop\n"))
    assert spec.at == datetime(2026, 12, 1, 14, 0, tzinfo=UTC)


def test_empty_optional_text_means_not_given() -> None:
    (spec,) = parse(posts(f'at: now\nimage: {IMG}\ncaption:\nfirst_comment: ""\nalt_text:'))
    assert spec.caption is None and spec.first_comment is None and spec.media[0].alt_text is None


def test_local_emulator_http_urls_are_allowed() -> None:
    (spec,) = parse(posts("at: now\nimage: http://127.0.0.1:8765/media/a.jpg"))
    assert spec.media[0].source == "http://127.0.0.1:8765/media/a.jpg"
    (spec,) = parse(posts("at: now\nreel: http://localhost:8765/v.mp4"))
    assert spec.media[0].source == "http://localhost:8765/v.mp4"


def test_local_video_path_is_made_absolute(tmp_path: Path) -> None:
    (tmp_path / "clips").mkdir()
    (tmp_path / "clips" / "v.mov").write_bytes(b"x")
    (spec,) = parse(posts("at: now\nreel: clips/v.mov"), base_dir=tmp_path)
    assert spec.media[0].source == str(tmp_path / "clips" / "v.mov")
    (spec,) = parse(posts(f"at: now\nreel: {tmp_path}/clips/v.mov"), base_dir=Path("/"))
    assert spec.media[0].source == str(tmp_path / "clips" / "v.mov")


def test_yaml_anchors_and_merge_keys_work() -> None:
    text = HEAD + textwrap.dedent(
        f"""\
        posts:
          - &p {{at: 2026-12-01 09:00, image: {IMG}, caption: shared}}
          - {{<<: *p, at: 2026-12-02 09:00}}
        """
    )
    first, second = parse(text)
    assert first.caption == second.caption == "shared"
    assert second.at == datetime(2026, 12, 2, 8, 0, tzinfo=UTC)


def test_utf8_bom_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "bom.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + posts(f"at: now\nimage: {IMG}").encode())
    assert len(load_queue_file(path, SETTINGS, NOW)) == 1


# --------------------------------------------------------------------------- bad files


def test_malformed_yaml_names_line_and_column() -> None:
    p = only_problem(posts(f"at: now\nimage: {IMG}\ncaption: Sale: 50% off"))
    assert p.post is None and p.field is None
    assert p.message.startswith(
        "not valid YAML at line 6, column 18: mapping values are not allowed here"
    )
    assert "must be put in quotes" in p.message


def test_tabs_get_a_hint() -> None:
    p = only_problem("account: shop\nposts:\n\t- at: now\n")
    assert "line 3, column 1" in p.message and "spaces, not tabs" in p.message


def test_control_character() -> None:
    p = only_problem(posts(f"at: now\nimage: {IMG}\ncaption: a\x07b"))
    assert p.message == (
        "the file contains a control character (#x0007) on line 6, which YAML does not allow; remove it"
    )


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "---\n"])
def test_empty_file(text: str) -> None:
    p = only_problem(text)
    assert p.message == "the file is empty; it needs a posts: list with at least one post"


def test_top_level_list() -> None:
    p = only_problem(f"- at: now\n  image: {IMG}\n")
    assert p.message == (
        "the file must be a mapping with account, timezone and posts, got a list "
        "(put the list of posts under posts:)"
    )


def test_top_level_text() -> None:
    assert "got text" in only_problem("just some words\n").message


def test_unknown_top_level_key() -> None:
    p = only_problem(posts(f"at: now\nimage: {IMG}", head="account: shop\ntimezon: UTC\n"))
    assert (p.post, p.field) == (None, "timezon")
    assert p.message == "unknown key 'timezon' (did you mean 'timezone'?)"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (HEAD, "posts is missing: list the posts under posts:"),
        (
            HEAD + "posts: {at: now}\n",
            "posts must be a list of posts (each starting with '- '), got a mapping (key: value pairs)",
        ),
        (HEAD + "posts: []\n", "posts is empty; there is nothing to queue"),
    ],
)
def test_posts_missing_wrong_or_empty(text: str, message: str) -> None:
    p = only_problem(text)
    assert (p.field, p.message) == ("posts", message)


def test_post_not_a_mapping() -> None:
    found = problems_of(HEAD + f"posts:\n  - {IMG}\n  - at: now\n    image: {IMG}\n  - []\n")
    assert [(p.post, p.message) for p in found] == [
        ("post 1", "a post must be a mapping of fields (at:, image:, …), got text"),
        ("post 3", "a post must be a mapping of fields (at:, image:, …), got a list"),
    ]


def test_unknown_post_key_with_suggestion() -> None:
    p = only_problem(posts(f"key: teaser\nat: now\nimage: {IMG}\ncaptoin: hi"))
    assert (p.post, p.field) == ("post 1 (key teaser)", "captoin")
    assert p.message == "unknown key 'captoin' (did you mean 'caption'?)"


def test_unknown_post_key_without_suggestion_lists_allowed() -> None:
    p = only_problem(posts(f"at: now\nstory: {IMG}\nmood: sunny"))
    assert (
        p.message
        == "unknown key 'mood'; allowed here: key, account, timezone, at, story, user_tags"
    )


def test_caption_must_be_text() -> None:
    p = only_problem(posts(f"at: now\nimage: {IMG}\ncaption: 2026"))
    assert (p.post, p.field) == ("post 1", "caption")
    assert p.message == "caption must be text, got a number; put it in quotes"


def test_share_to_feed_must_be_boolean() -> None:
    p = only_problem(posts(f'at: now\nreel: {VID}\nshare_to_feed: "true"'))
    assert p.field == "share_to_feed"
    assert p.message == "share_to_feed must be true or false (without quotes), got text 'true'"


def test_user_tags_must_be_a_list() -> None:
    p = only_problem(posts(f"at: now\nimage: {IMG}\nuser_tags: partner"))
    assert p.field == "user_tags"
    assert (
        p.message == "user_tags must be a list like [{username: partner, x: 0.5, y: 0.4}], got text"
    )


def test_user_tag_problems() -> None:
    found = problems_of(
        posts(
            f"at: now\nimage: {IMG}\nuser_tags: [{{username: a, x: 1.5, y: 0.1}}, {{username: b, y: 0.2}}, {{x: 0.1, y: 0.1}}, {{username: c, x: true, y: 0}}]",
            f"at: now\nreel: {VID}\nuser_tags: [{{username: d, x: 0.3}}, {{usrname: e}}]",
        )
    )
    assert [(p.post, p.field, p.message) for p in found] == [
        (
            "post 1",
            "user_tags[0].x",
            "x is 1.5; it must be from 0 to 1 (a fraction of the width, from the left)",
        ),
        (
            "post 1",
            "user_tags[1].x",
            "x is missing; tags on images need x and y, from 0 to 1 (0, 0 is the top-left corner)",
        ),
        (
            "post 1",
            "user_tags[2].username",
            "username is missing; each tag names the account to tag",
        ),
        ("post 1", "user_tags[3].x", "x must be a number from 0 to 1, got true/false"),
        ("post 2", "user_tags[0]", "give both x and y, or neither"),
        ("post 2", "user_tags[1].usrname", "unknown key 'usrname' (did you mean 'username'?)"),
        (
            "post 2",
            "user_tags[1].username",
            "username is missing; each tag names the account to tag",
        ),
    ]


def test_two_kinds_in_one_post() -> None:
    p = only_problem(posts(f"at: now\nimage: {IMG}\nreel: {VID}"))
    assert (p.post, p.field) == ("post 1", None)
    assert (
        p.message
        == "a post has exactly one of image, reel, story or carousel; this one has image and reel"
    )


def test_no_kind() -> None:
    p = only_problem(posts("at: now\ncaption: hello"))
    assert p.message == "the post has no media: give exactly one of image, reel, story or carousel"


def test_missing_at() -> None:
    p = only_problem(posts(f"key: x1\nimage: {IMG}"))
    assert (p.post, p.field) == ("post 1 (key x1)", "at")
    assert p.message == "at is missing; say when to publish, e.g. at: 2026-12-01 09:00, or at: now"


def test_time_in_the_past() -> None:
    p = only_problem(posts(f"at: 2026-01-01 09:00\nimage: {IMG}"))
    assert p.field == "at"
    assert p.message == (
        "at 2026-01-01 09:00 Europe/Berlin is in the past (it is now 2026-06-01 12:00 UTC); "
        "use a future time, or at: now to publish as soon as possible"
    )


def test_past_grace_comes_from_settings() -> None:
    text = posts(f"at: 2026-06-01 13:55\nimage: {IMG}")  # 5 minutes ago
    assert "in the past" in only_problem(text).message
    assert parse(text, settings=make_settings(past_grace_s=600))[0].at is not None


def test_nonexistent_local_time() -> None:
    p = only_problem(posts(f"at: 2026-03-29 02:30\nimage: {IMG}"))
    assert p.field == "at"
    assert p.message.startswith(
        "at 2026-03-29 02:30 does not exist in Europe/Berlin: the clocks jump forward over it"
    )


def test_ambiguous_local_time() -> None:
    p = only_problem(posts(f"at: 2026-10-25 02:30\nimage: {IMG}"))
    assert p.field == "at"
    assert p.message == (
        "at 2026-10-25 02:30 is ambiguous in Europe/Berlin: it happens twice because the clocks "
        "go back (daylight saving time ends); write it with a UTC offset, e.g. "
        "2026-10-25T02:30:00+02:00 (the first) or 2026-10-25T02:30:00+01:00 (the second)"
    )
    (spec,) = parse(posts(f"at: 2026-10-25T02:30:00+01:00\nimage: {IMG}"))
    assert spec.at == datetime(2026, 10, 25, 1, 30, tzinfo=UTC)


def test_unknown_timezone_file_level_reported_once() -> None:
    text = posts(
        f"at: 2026-12-01 09:00\nimage: {IMG}",
        f"at: 2026-12-02 09:00\nimage: {IMG}",
        head="account: shop\ntimezone: Europe/Berln\n",
    )
    p = only_problem(text)
    assert (p.post, p.field) == (None, "timezone")
    assert p.message.startswith("unknown timezone 'Europe/Berln' (did you mean 'Europe/Berlin'?)")


def test_unknown_timezone_on_a_post() -> None:
    p = only_problem(posts(f"at: 2026-12-01 09:00\ntimezone: Mars/Olympus\nimage: {IMG}"))
    assert (p.post, p.field) == ("post 1", "timezone")
    assert p.message.startswith("unknown timezone 'Mars/Olympus'; use an IANA name")


def test_local_time_without_timezone() -> None:
    p = only_problem(posts(f"at: 2026-12-01 09:00\nimage: {IMG}", head="account: shop\n"))
    assert p.field == "at"
    assert p.message.startswith("at 2026-12-01 09:00 has no UTC offset and no timezone is set")


@pytest.mark.parametrize("written", ["2026-12-01", '"2026-12-01"'])
def test_date_only(written: str) -> None:
    p = only_problem(posts(f"at: {written}\nimage: {IMG}"))
    assert p.field == "at"
    assert "is a date without a time of day; write e.g. 2026-12-01 09:00" in p.message


@pytest.mark.parametrize(
    ("written", "message"),
    [
        ("tomorrow", "at 'tomorrow' is not a date and time that can be read"),
        (
            "2026-13-01 09:00",
            "at '2026-13-01 09:00' is not a valid date and time: month must be in 1..12",
        ),
        ("1767225600", "at must be a date and time"),
    ],
)
def test_unreadable_time(written: str, message: str) -> None:
    assert only_problem(posts(f"at: {written}\nimage: {IMG}")).message.startswith(message)


def test_unconfigured_account_file_level_reported_once() -> None:
    p = only_problem(
        posts(f"at: now\nimage: {IMG}", f"at: now\nimage: {IMG2}", head="account: shpo\n")
    )
    assert (p.post, p.field) == (None, "account")
    assert p.message == "account 'shpo' is not configured (configured: shop, studio)"


def test_unconfigured_account_on_a_post() -> None:
    p = only_problem(posts(f"at: now\naccount: agency\nimage: {IMG}"))
    assert (p.post, p.field) == ("post 1", "account")
    assert p.message == "account 'agency' is not configured (configured: shop, studio)"


def test_no_account_at_all() -> None:
    p = only_problem(posts(f"at: now\nimage: {IMG}", head=""))
    assert p.field == "account"
    assert p.message.startswith("no account: set account: at the top of the file or on this post")


def test_caption_too_long() -> None:
    p = only_problem(posts(f"at: now\nimage: {IMG}\ncaption: {'x' * 2301}"))
    assert (p.field, p.message) == ("caption", "caption is 2,301 characters; the limit is 2,200")
    parse(posts(f"at: now\nimage: {IMG}\ncaption: {'x' * 2200}"))


def test_too_many_hashtags_and_mentions() -> None:
    tags = " ".join(f"#t{i}" for i in range(31))
    mentions = " ".join(f"@u{i}" for i in range(21))
    found = problems_of(posts(f'at: now\nimage: {IMG}\ncaption: "{tags} {mentions} me@mail.com"'))
    assert [(p.field, p.message) for p in found] == [
        ("caption", "caption has 31 hashtags; the limit is 30"),
        ("caption", "caption has 21 @-mentions; the limit is 20"),
    ]
    ok = " ".join(f"#t{i}" for i in range(30)) + " " + " ".join(f"@u{i}" for i in range(20))
    parse(posts(f'at: now\nimage: {IMG}\ncaption: "{ok} mail@example.com"'))


def test_alt_text_too_long() -> None:
    p = only_problem(posts(f"at: now\nimage: {IMG}\nalt_text: {'a' * 1001}"))
    assert (p.field, p.message) == ("alt_text", "alt_text is 1,001 characters; the limit is 1,000")


def test_too_many_collaborators() -> None:
    p = only_problem(posts(f"at: now\nimage: {IMG}\ncollaborators: [a, b, c, d]"))
    assert (p.field, p.message) == (
        "collaborators",
        "collaborators lists 4 accounts; the limit is 3",
    )


def test_bad_collaborator_names() -> None:
    found = problems_of(
        posts(
            f"at: now\nimage: {IMG}\ncollaborators: [good, 'no spaces', good]",
            f"at: now\nimage: {IMG2}\ncollaborators: [42]",
            f"at: now\nreel: {VID}\ncollaborators: partner",
        )
    )
    assert [(p.post, p.field, p.message) for p in found] == [
        (
            "post 1",
            "collaborators[1]",
            "'no spaces' is not an Instagram username (letters, digits, '.' and '_', at most 30 characters)",
        ),
        ("post 1", "collaborators", "'good' is listed more than once"),
        (
            "post 2",
            "collaborators[0]",
            "collaborators[0] must be an Instagram username, got a number; put it in quotes",
        ),
        (
            "post 3",
            "collaborators",
            "collaborators must be a list of usernames, e.g. [partner, friend], got text",
        ),
    ]


@pytest.mark.parametrize("count", [1, 11])
def test_carousel_item_count(count: int) -> None:
    items = ", ".join(f"https://cdn.example.com/{i}.jpg" for i in range(count))
    p = only_problem(posts(f"at: now\ncarousel: [{items}]"))
    assert (p.field, p.message) == (
        "carousel",
        f"a carousel needs 2 to 10 items; this one has {count}",
    )


def test_carousel_video_item_takes_no_tags_or_alt_text() -> None:
    found = problems_of(
        posts(
            f"at: now\ncarousel: [{IMG}, {{video: {VID}, user_tags: [{{username: a}}], alt_text: hi}}]"
        )
    )
    assert [(p.field, p.message) for p in found] == [
        (
            "carousel[1].user_tags",
            "a video item cannot have user_tags; only image items can be tagged",
        ),
        ("carousel[1].alt_text", "a video item cannot have alt_text; it is for image items"),
    ]


def test_carousel_item_shapes() -> None:
    found = problems_of(
        posts(f"at: now\ncarousel: [{IMG}, {{image: {IMG}, video: {VID}}}, 7, {{reel: {VID}}}]")
    )
    assert [(p.field, p.message) for p in found] == [
        ("carousel[1]", "give exactly one of image or video here, e.g. {video: URL} (found 2)"),
        (
            "carousel[2]",
            "carousel[2] must be a URL, a file path, {image: URL} or {video: URL}, got a number",
        ),
        ("carousel[3].reel", "unknown key 'reel'; allowed here: image, video, alt_text, user_tags"),
        ("carousel[3]", "give exactly one of image or video here, e.g. {video: URL} (found 0)"),
    ]


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        (
            f"image: {IMG}\nshare_to_feed: true",
            "share_to_feed",
            "share_to_feed does not apply to an image post; it is for reels",
        ),
        (
            f"story: {IMG}\ncaption: hi",
            "caption",
            "caption does not apply to a story; it is for image posts, reels and carousels",
        ),
        (
            f"story: {IMG}\ncollaborators: [a]",
            "collaborators",
            "collaborators does not apply to a story; it is for image posts, reels and carousels",
        ),
        (
            f"story: {IMG}\nfirst_comment: hi",
            "first_comment",
            "first_comment does not apply to a story; it is for image posts, reels and carousels",
        ),
        (
            f"reel: {VID}\nalt_text: hi",
            "alt_text",
            "alt_text does not apply to a reel; it is for image posts",
        ),
        (
            f"carousel: [{IMG}, {IMG}]\nalt_text: hi",
            "alt_text",
            "alt_text does not apply to a carousel; put it on each image item instead: {image: URL, alt_text: …}",
        ),
        (
            f"image: {IMG}\ncover: {IMG}",
            "cover",
            "cover does not apply to an image post; it is for reels",
        ),
    ],
)
def test_field_not_applicable_to_kind(body: str, field: str, message: str) -> None:
    p = only_problem(posts("at: now\n" + body))
    assert (p.field, p.message) == (field, message)


def test_cover_and_thumb_offset_together() -> None:
    p = only_problem(posts(f"at: now\nreel: {VID}\ncover: {IMG}\nthumb_offset_ms: 1500"))
    assert p.field == "cover"
    assert p.message.startswith("give cover or thumb_offset_ms, not both")


def test_reel_field_values() -> None:
    found = problems_of(
        posts(
            f"at: now\nreel: {VID}\nthumb_offset_ms: -5\naudio_name: 12\ntrial: {{graduation: auto}}\nlocation_id: Berlin"
        )
    )
    assert [(p.field, p.message) for p in found] == [
        (
            "location_id",
            "location_id must be the numeric id of a Facebook Page with a location (e.g. \"110123456789\"), got 'Berlin'",
        ),
        (
            "thumb_offset_ms",
            "thumb_offset_ms is -5; it must be 0 or more (milliseconds into the video)",
        ),
        ("audio_name", "audio_name must be text, got a number; put it in quotes"),
        ("trial.graduation", "graduation must be MANUAL or SS_PERFORMANCE, got 'auto'"),
    ]


def test_http_url_is_refused() -> None:
    p = only_problem(posts("at: now\nimage: http://cdn.example.com/a.jpg"))
    assert p.field == "image"
    assert p.message == (
        "image http://cdn.example.com/a.jpg is an http:// URL; Meta fetches media only over "
        "https:// (plain http works only for localhost, for the emulator)"
    )


def test_other_url_problems() -> None:
    found = problems_of(
        posts(
            "at: now\nreel: ftp://cdn.example.com/a.mp4\ncover: https://cdn.example.com/my cover.jpg",
            "at: now\nimage: https:///a.jpg",
        )
    )
    assert [(p.post, p.message) for p in found] == [
        ("post 1", "reel ftp://cdn.example.com/a.mp4 must be an https:// URL, not ftp://"),
        ("post 1", "cover https://cdn.example.com/my cover.jpg contains spaces; write them as %20"),
        ("post 2", "image https:///a.jpg has no host name"),
    ]


def test_a_date_that_does_not_exist_is_named_before_the_missing_time() -> None:
    p = only_problem(posts(f'at: "2027-13-45"\nimage: {IMG}'))
    assert p.field == "at"
    assert p.message == "at '2027-13-45' is not a date (month must be in 1..12)"  # not "write e.g. 2027-13-45 09:00"


def test_a_url_with_a_line_break_is_named_as_such() -> None:
    p = only_problem(posts('at: now\nimage: "https://cdn.example.com/a\\r\\nb.jpg"'))
    assert p.message == "image https://cdn.example.com/a\r\nb.jpg contains a line break or tab; a URL is one line"


def test_non_ascii_url() -> None:
    p = only_problem(posts("at: now\nimage: https://cdn.example.com/Grüße.jpg"))
    assert p.field == "image"
    assert p.message == (
        "image https://cdn.example.com/Grüße.jpg contains characters Meta cannot fetch (ü ß); "
        "URLs must be plain ASCII: percent-encode them (ü → %C3%BC) or rename the file"
    )


def test_media_type_by_extension() -> None:
    found = problems_of(
        posts(
            "at: now\nimage: https://cdn.example.com/a.png",
            f"at: now\nimage: {VID}",
            f"at: now\nreel: {IMG}",
            "at: now\nreel: https://cdn.example.com/a.webm",
            "at: now\nimage: /home/me/photo.jpg",
        )
    )
    assert [(p.post, p.field, p.message) for p in found] == [
        (
            "post 1",
            "image",
            "image https://cdn.example.com/a.png is a .png file; Instagram accepts only JPEG images (.jpg/.jpeg)",
        ),
        (
            "post 2",
            "image",
            f"image {VID} looks like a video (.mp4); this must be a JPEG image (.jpg/.jpeg)",
        ),
        (
            "post 3",
            "reel",
            f"reel {IMG} looks like an image (.jpg); this must be an MP4 or MOV video",
        ),
        (
            "post 4",
            "reel",
            "reel https://cdn.example.com/a.webm is a .webm file; Instagram accepts only MP4 or MOV videos",
        ),
        (
            "post 5",
            "image",
            "image '/home/me/photo.jpg' is not a URL; images must be given as an https:// URL (Meta fetches them itself; only videos can be uploaded from a local file)",
        ),
    ]


def test_unknown_story_extension() -> None:
    p = only_problem(posts("at: now\nstory: https://cdn.example.com/s.gif"))
    assert p.field == "story"
    assert p.message == (
        "cannot tell whether https://cdn.example.com/s.gif is an image or a video from its "
        "extension (.gif): .jpg/.jpeg is an image, .mp4/.mov a video; otherwise write "
        "{image: URL} or {video: URL}"
    )


def test_missing_local_file(tmp_path: Path) -> None:
    found = problems_of(
        posts("at: now\nreel: clips/missing.mp4", "at: now\nstory: {video: clips}"),
        base_dir=tmp_path,
    )
    (tmp_path / "clips").mkdir()
    found = problems_of(
        posts("at: now\nreel: clips/missing.mp4", "at: now\nstory: {video: clips}"),
        base_dir=tmp_path,
    )
    assert [(p.post, p.field, p.message) for p in found] == [
        (
            "post 1",
            "reel",
            f"local file {tmp_path}/clips/missing.mp4 does not exist (relative paths are read from the queue file's folder)",
        ),
        ("post 2", "story.video", f"{tmp_path}/clips is a folder, not a video file"),
    ]


def test_duplicate_keys() -> None:
    found = problems_of(
        posts(
            f"key: teaser\nat: now\nimage: {IMG}",
            f"key: other\nat: now\nimage: {IMG}",
            f"key: teaser\nat: now\nreel: {VID}",
        )
    )
    assert [(p.post, p.field, p.message) for p in found] == [
        (
            "post 3 (key teaser)",
            "key",
            "key 'teaser' is already used by post 1; each post in a file needs its own key",
        ),
    ]


def test_identical_keyless_posts() -> None:
    p = only_problem(
        posts(f"at: now\nimage: {IMG}", f"at: now\nimage: {IMG2}", f"at: now\nimage: {IMG}")
    )
    assert (p.post, p.field) == ("post 3", None)
    assert p.message.startswith(
        "this post is identical to post 1 (same account, time, media and text)"
    )


@pytest.mark.parametrize(
    ("written", "message"),
    [
        (
            "has space",
            "key 'has space' has characters that are not allowed; use letters, digits, '_', '.', ':' and '-' (no spaces)",
        ),
        ("x" * 129, "key is 129 characters; the limit is 128"),
        ("123", "key must be text, got a number; put it in quotes"),
    ],
)
def test_bad_keys(written: str, message: str) -> None:
    p = only_problem(posts(f"key: {written}\nat: now\nimage: {IMG}"))
    assert (p.post, p.field, p.message) == ("post 1", "key", message)


def test_file_over_the_size_limit_is_not_read(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_text(posts(f"at: now\nimage: {IMG}\ncaption: {'x' * 2000}"))
    size = path.stat().st_size
    settings = make_settings(max_file_bytes=1000)
    with pytest.raises(InvalidInput) as info:
        load_queue_file(path, settings, NOW)
    (p,) = info.value.problems
    assert (p.file, p.post, p.field) == (str(path), None, None)
    assert (
        p.message == f"the file is {size:,} bytes; the limit is 1,000 bytes (queue.max_file_bytes)"
    )
    with pytest.raises(InvalidInput, match="the limit is 1,000 bytes"):
        parse_queue_text(path.read_text(), "big.yaml", settings, NOW)


def test_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(posts(f"at: now\nimage: {IMG}\ncaption: Grüße").encode("latin-1"))
    with pytest.raises(InvalidInput) as info:
        load_queue_file(path, SETTINGS, NOW)
    assert info.value.problems[0].message == (
        "the file is not UTF-8 text (byte 0xfc on line 6); save it with UTF-8 encoding"
    )


def test_unreadable_paths(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput) as info:
        load_queue_file(tmp_path / "nope.yaml", SETTINGS, NOW)
    assert info.value.problems[0].message == "cannot read the file: No such file or directory"
    with pytest.raises(InvalidInput) as info:
        load_queue_file(tmp_path, SETTINGS, NOW)
    assert info.value.problems[0].message == "is a folder, not a queue file"


def test_key_written_twice_in_a_post() -> None:
    p = only_problem(posts(f"at: now\nimage: {IMG}\ncaption: first\ncaption: second"))
    assert (
        p.message == "'caption' is written twice in the same place (lines 6 and 7); keep only one"
    )


def test_billion_laughs_is_refused_quickly() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 10):
        prev = f"*a{i - 1}"
        lines.append(f"a{i}: &a{i} [{', '.join([prev] * 10)}]")
    text = (
        HEAD + "\n".join(lines) + f"\nposts:\n  - at: now\n    image: {IMG}\n    user_tags: *a9\n"
    )
    p = only_problem(text)
    assert p.message.startswith("the file expands to more than 1,000,000 values")


def test_recursive_and_deep_documents() -> None:
    assert "nested too deeply" in only_problem(HEAD + "posts: &p [*p]\n").message
    assert (
        "nested too deeply" in only_problem(HEAD + "posts: " + "[" * 60 + "]" * 60 + "\n").message
    )
    assert "nested too deeply" in only_problem("[" * 5000 + "]" * 5000).message


def test_several_problems_reported_together() -> None:
    with pytest.raises(InvalidInput) as info:
        load_queue_file(DATA / "several_problems.yaml", SETTINGS, NOW)
    found = [(p.post, p.field, p.message.split(";")[0]) for p in info.value.problems]
    assert found == [
        ("post 1 (key teaser)", "captoin", "unknown key 'captoin' (did you mean 'caption'?)"),
        (
            "post 1 (key teaser)",
            "image",
            "image http://cdn.example.com/teaser.jpg is an http:// URL",
        ),
        (
            "post 2 (key teaser)",
            "at",
            "at 2026-03-29 02:30 does not exist in Europe/Berlin: the clocks jump forward over it (daylight saving time starts)",
        ),
        (
            "post 2 (key teaser)",
            "cover",
            "give cover or thumb_offset_ms, not both: cover is a separate JPEG, thumb_offset_ms picks a frame of the video",
        ),
        ("post 2 (key teaser)", "key", "key 'teaser' is already used by post 1"),
        ("post 3", "caption", "caption does not apply to a story"),
        (
            "post 3",
            "story",
            "cannot tell whether https://cdn.example.com/story.png is an image or a video from its extension (.png): .jpg/.jpeg is an image, .mp4/.mov a video",
        ),
        ("post 4", "carousel", "a carousel needs 2 to 10 items"),
    ]
    text = str(info.value)
    assert text.splitlines()[0] == (
        f"{DATA / 'several_problems.yaml'}: post 1 (key teaser): field 'captoin': "
        "unknown key 'captoin' (did you mean 'caption'?)"
    )


def test_now_must_be_aware() -> None:
    with pytest.raises(ValueError):
        parse_queue_text(posts(f"at: now\nimage: {IMG}"), "q.yaml", SETTINGS, datetime(2026, 1, 1))


def test_first_comment_has_the_caption_length_limit() -> None:
    from scheduler.config import settings_from_dict
    from scheduler.problems import InvalidInput
    from scheduler.queuefile import parse_queue_text

    settings = settings_from_dict(
        {"accounts": [{"name": "shop", "ig_user_id": "1", "token_env": "X"}]}, "t")
    text = (
        "account: shop\nposts:\n  - at: now\n    image: https://cdn.example.com/a.jpg\n"
        f"    first_comment: {'x' * 2201}\n"
    )
    with pytest.raises(InvalidInput) as e:
        parse_queue_text(text, "q.yaml", settings, datetime.now(UTC))
    [p] = e.value.problems
    assert p.field == "first_comment" and "2,201 characters; the limit is 2,200" in p.message


def test_chained_merge_keys_are_not_keys_written_twice() -> None:
    from scheduler.queuefile.yamlload import load_queue_yaml

    text = ("base: &base {caption: hi, alt_text: a}\n"
            "more: &more {<<: *base, caption: hello}\n"  # merged, overridden, merged again
            "post: {<<: *more, caption: final}\n")
    usable, doc, problems = load_queue_yaml(text, 10_000)
    assert usable and problems == [] and doc["post"] == {"caption": "final", "alt_text": "a"}
    usable, _, problems = load_queue_yaml("a: 1\nb: 2\na: 3\n", 10_000)
    assert usable and problems == ["'a' is written twice in the same place (lines 1 and 3); keep only one"]
