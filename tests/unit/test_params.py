"""Container parameters: each field at the level the API accepts it (README "Post kinds, fields and how they reach Instagram")."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from scheduler.models import MediaItem, PostSpec, UserTag
from scheduler.pipeline.params import child_params, parent_params, single_params

AT = datetime(2026, 12, 1, 9, tzinfo=UTC)


def test_image_params() -> None:
    spec = PostSpec(
        key="k", account="a", kind="image", at=AT,
        media=(MediaItem("image", "https://x/a.jpg", alt_text="alt", user_tags=(UserTag("bob", 0.5, 0.4),)),),
        caption="hi", location_id="123", collaborators=("c1", "c2"),
    )
    p = single_params(spec)
    assert p == {
        "image_url": "https://x/a.jpg", "alt_text": "alt", "caption": "hi", "location_id": "123",
        "collaborators": '["c1", "c2"]', "user_tags": '[{"username":"bob","x":0.5,"y":0.4}]',
    }


def test_reel_params_cover_wins_and_local_file_is_resumable() -> None:
    spec = PostSpec(
        key="k", account="a", kind="reel", at=AT, media=(MediaItem("video", "https://x/v.mp4"),),
        caption="c", cover_url="https://x/c.jpg", share_to_feed=True, audio_name="song",
        trial_graduation="MANUAL",
    )
    p = single_params(spec)
    assert p["media_type"] == "REELS" and p["video_url"] == "https://x/v.mp4"
    assert p["cover_url"] == "https://x/c.jpg" and "thumb_offset" not in p
    assert p["share_to_feed"] == "true" and p["audio_name"] == "song"
    assert json.loads(p["trial_params"]) == {"graduation_strategy": "MANUAL"}
    local = PostSpec(key="k", account="a", kind="reel", at=AT, media=(MediaItem("video", "/tmp/v.mp4"),),
                     thumb_offset_ms=1500)
    lp = single_params(local)
    assert lp["upload_type"] == "resumable" and "video_url" not in lp and lp["thumb_offset"] == "1500"


def test_story_takes_no_caption_level_fields() -> None:
    spec = PostSpec(key="k", account="a", kind="story", at=AT, media=(MediaItem("video", "https://x/s.mp4"),))
    assert single_params(spec) == {"media_type": "STORIES", "video_url": "https://x/s.mp4"}


def test_carousel_fields_split_between_children_and_parent() -> None:
    img = MediaItem("image", "https://x/1.jpg", alt_text="one", user_tags=(UserTag("t", 0.1, 0.9),))
    vid = MediaItem("video", "https://x/2.mp4")
    spec = PostSpec(key="k", account="a", kind="carousel", at=AT, media=(img, vid), caption="three",
                    location_id="9", collaborators=("c",))
    assert child_params(img) == {"is_carousel_item": "true", "image_url": "https://x/1.jpg", "alt_text": "one",
                                 "user_tags": '[{"username":"t","x":0.1,"y":0.9}]'}
    assert child_params(vid) == {"is_carousel_item": "true", "media_type": "VIDEO", "video_url": "https://x/2.mp4"}
    assert parent_params(spec, ["1", "2"]) == {"media_type": "CAROUSEL", "children": "1,2", "caption": "three",
                                              "location_id": "9", "collaborators": '["c"]'}
