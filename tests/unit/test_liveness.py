"""Which media on an account's list is a post's (pure), and when the quota is nearly full."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from scheduler.pipeline.liveness import SEARCH_MARGIN_S, Found, match_media
from scheduler.pipeline.quotareads import QuotaReads, near_full

T0 = datetime(2026, 12, 1, 9, 0, 0)


def item(mid: str, seconds: float, caption: str | None = "hello", product: str | None = "FEED",
         media_type: str | None = "IMAGE") -> dict[str, object]:
    when = (T0 + timedelta(seconds=seconds)).replace(tzinfo=UTC).strftime("%Y-%m-%dT%H:%M:%S+0000")
    out: dict[str, object] = {"id": mid, "timestamp": when}
    if caption is not None:
        out["caption"] = caption
    if product is not None:
        out["media_product_type"] = product
    if media_type is not None:
        out["media_type"] = media_type
    return out


def test_the_closest_media_with_the_caption_and_kind_is_the_posts() -> None:
    items = [item("a", 40), item("b", 2), item("c", 1, caption="other"), item("d", 0, product="REELS")]
    found = match_media(items, kind="image", caption="hello", started=T0, owned=set())
    assert found == Found("b", (T0 + timedelta(seconds=2)).replace(tzinfo=UTC))


def test_media_owned_by_another_post_or_too_old_is_not_the_posts() -> None:
    items = [item("a", 1), item("old", -SEARCH_MARGIN_S - 1)]
    assert match_media(items, kind="image", caption="hello", started=T0, owned={"a"}) is None


def test_captions_compare_without_outer_blanks_and_none_is_empty() -> None:
    assert match_media([item("a", 0, caption=" hello\n")], kind="image", caption="hello", started=T0, owned=set())
    assert match_media([item("a", 0, caption=None)], kind="image", caption=None, started=T0, owned=set())
    assert match_media([item("a", 0, caption="x")], kind="image", caption=None, started=T0, owned=set()) is None


def test_kinds_are_told_apart_and_missing_fields_are_not_held_against_an_item() -> None:
    reel = item("r", 0, caption="hello", product="REELS", media_type="VIDEO")
    album = item("c", 0, caption="hello", product=None, media_type="CAROUSEL_ALBUM")
    assert match_media([reel], kind="reel", caption="hello", started=T0, owned=set())
    assert match_media([reel], kind="image", caption="hello", started=T0, owned=set()) is None
    assert match_media([album], kind="carousel", caption="hello", started=T0, owned=set())
    assert match_media([album], kind="image", caption="hello", started=T0, owned=set()) is None
    story = item("s", 0, caption=None, product="STORY", media_type="VIDEO")
    assert match_media([story], kind="story", caption=None, started=T0, owned=set())  # stories: no caption


def test_unreadable_times_and_ids_are_skipped() -> None:
    items: list[dict[str, object]] = [{"id": "x", "timestamp": "yesterday", "caption": "hello"},
                                      {"timestamp": item("y", 0)["timestamp"], "caption": "hello"}]
    assert match_media(items, kind="image", caption="hello", started=T0, owned=set()) is None


def test_nearly_full_is_a_tenth_of_the_quota_and_at_least_two_slots() -> None:
    assert near_full(48, 50) and near_full(45, 50) and not near_full(44, 50)
    assert near_full(90, 100) and not near_full(89, 100)
    reads = QuotaReads()
    assert not reads.is_near_full("shop")
    reads.note("shop", 49, 50)
    assert reads.is_near_full("shop")
