"""The fake Graph API, exercised over real HTTP (httpx against RunningEmulator).

Time is moved with the emulator's clock (`state.advance`) rather than slept away.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from scheduler.emulator import EmulatorState, RunningEmulator

ACCT = "17841400000000001"
OTHER = "17841400000000002"
V = "v23.0"
IMG = "https://cdn.example.com/photo.jpg"
VID = "https://cdn.example.com/clip.mp4"


@pytest.fixture
def emu() -> Iterator[RunningEmulator]:
    with RunningEmulator() as running:
        yield running


@pytest.fixture
def client(emu: RunningEmulator) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=f"{emu.base_url}/{V}", headers={"Authorization": "Bearer tok"}, timeout=5
    ) as c:
        yield c


def err(resp: httpx.Response) -> dict[str, Any]:
    body = resp.json()
    assert "error" in body, body
    return body["error"]


def create(client: httpx.Client, account: str = ACCT, **params: Any) -> httpx.Response:
    if not {"media_type", "image_url", "video_url"} & set(params):
        params["image_url"] = IMG
    return client.post(f"/{account}/media", data=params)


def create_ok(client: httpx.Client, account: str = ACCT, **params: Any) -> str:
    resp = create(client, account, **params)
    assert resp.status_code == 200, resp.text
    return str(resp.json()["id"])


def publish(client: httpx.Client, cid: str, account: str = ACCT) -> httpx.Response:
    return client.post(f"/{account}/media_publish", data={"creation_id": cid})


def status(client: httpx.Client, cid: str) -> dict[str, Any]:
    resp = client.get(f"/{cid}", params={"fields": "id,status_code,status"})
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def published_image(emu: RunningEmulator, client: httpx.Client, **params: Any) -> str:
    cid = create_ok(client, **params)
    emu.state.advance(5)
    resp = publish(client, cid)
    assert resp.status_code == 200, resp.text
    return str(resp.json()["id"])


def buc(resp: httpx.Response, account: str = ACCT) -> dict[str, Any]:
    return dict(json.loads(resp.headers["X-Business-Use-Case-Usage"])[account][0])


# --------------------------------------------------------------------------- lifecycle
def test_container_lifecycle_in_progress_finished_published(
    emu: RunningEmulator, client: httpx.Client
) -> None:
    cid = create_ok(client, caption="Spring #launch")
    assert status(client, cid)["status_code"] == "IN_PROGRESS"
    emu.state.advance(1)
    assert status(client, cid) == {
        "id": cid,
        "status_code": "FINISHED",
        "status": "Finished: Media has been uploaded and it is ready to be published.",
    }
    resp = publish(client, cid)
    assert resp.status_code == 200
    media_id = resp.json()["id"]
    assert status(client, cid)["status_code"] == "PUBLISHED"

    info = client.get(
        f"/{media_id}",
        params={"fields": "id,permalink,media_type,media_product_type,timestamp,caption"},
    ).json()
    assert info["id"] == media_id
    assert info["media_type"] == "IMAGE" and info["media_product_type"] == "FEED"
    assert info["caption"] == "Spring #launch"
    assert info["permalink"].startswith("https://www.instagram.com/p/")
    assert info["timestamp"].endswith("+0000")
    [published] = emu.state.published_media(ACCT)
    assert published["id"] == media_id and published["container_id"] == cid


def test_real_processing_time_passes_without_clock_jumps(emu: RunningEmulator) -> None:
    emu.state.default_processing_s = {"image": 0.05, "video": 0.05}
    with httpx.Client(base_url=f"{emu.base_url}/{V}", params={"access_token": "t"}) as c:
        cid = create_ok(c)
        time.sleep(0.1)
        assert status(c, cid)["status_code"] == "FINISHED"


def test_container_expires_after_24_hours(emu: RunningEmulator, client: httpx.Client) -> None:
    cid = create_ok(client)
    emu.state.advance(86400)
    assert status(client, cid)["status_code"] == "EXPIRED"
    e = err(publish(client, cid))
    assert (e["code"], e["error_subcode"]) == (-2, 2207020)
    emu.state.configure(expired_publish_error=2207008)
    e = err(publish(client, cid))
    assert (e["code"], e["error_subcode"], e["is_transient"]) == (24, 2207008, True)


def test_publish_refusals(emu: RunningEmulator, client: httpx.Client) -> None:
    cid = create_ok(client)
    resp = publish(client, cid)
    assert resp.status_code == 400
    e = err(resp)
    assert (e["code"], e["error_subcode"]) == (9007, 2207027)
    assert e["type"] == "OAuthException" and e["fbtrace_id"]

    emu.state.advance(1)
    assert publish(client, cid).status_code == 200
    e = err(publish(client, cid))  # already published: our documented choice, code 100
    assert e["code"] == 100 and "already been published" in e["message"]
    assert "error_subcode" not in e
    assert emu.state.containers[cid]["publish_attempts"] == 3
    assert len(emu.state.published_media()) == 1

    e = err(publish(client, "17990000000099999"))
    assert (e["code"], e["error_subcode"]) == (24, 2207006)
    e = err(client.post(f"/{ACCT}/media_publish", data={}))
    assert e["code"] == 100


def test_processing_failures_from_rules_hints_and_format(
    emu: RunningEmulator, client: httpx.Client
) -> None:
    emu.state.add_media_rule("broken", fail_subcode=2207052, processing_s=2)
    by_rule = create_ok(client, image_url="https://cdn.example.com/broken.jpg")
    by_hint = create_ok(client, image_url=f"{IMG}?emu_fail=2207052&emu_processing_s=30")
    png = create_ok(client, image_url="https://cdn.example.com/photo.png")
    emu.state.advance(2.5)
    assert status(client, by_hint)["status_code"] == "IN_PROGRESS"
    st = status(client, by_rule)
    assert st["status_code"] == "ERROR"
    assert st["status"] == "Error: Media upload has failed with error code 2207052"
    e = err(publish(client, by_rule))
    assert (e["code"], e["error_subcode"]) == (9004, 2207052)
    e = err(publish(client, png))
    assert (e["code"], e["error_subcode"]) == (36001, 2207005)
    emu.state.advance(30)
    assert status(client, by_hint)["status_code"] == "ERROR"


def test_quota_exhaustion_and_content_publishing_limit(
    emu: RunningEmulator, client: httpx.Client
) -> None:
    emu.state.add_account(ACCT, username="shop", quota_total=2)
    for _ in range(2):
        published_image(emu, client)
    cid = create_ok(client)
    emu.state.advance(10)
    e = err(publish(client, cid))
    assert (e["code"], e["error_subcode"]) == (9, 2207042)
    limit = client.get(
        f"/{ACCT}/content_publishing_limit", params={"fields": "quota_usage,config"}
    ).json()
    assert limit == {
        "data": [{"quota_usage": 2, "config": {"quota_total": 2, "quota_duration": 86400}}]
    }
    since = int(emu.state.now()) - 5
    only_recent = client.get(f"/{ACCT}/content_publishing_limit", params={"since": since}).json()
    assert only_recent == {"data": [{"quota_usage": 0}]}

    emu.state.advance(86400)  # the rolling window frees both slots
    assert published_image(emu, client)
    usage = client.get(f"/{ACCT}/content_publishing_limit", params={"fields": "quota_usage"})
    assert usage.json()["data"][0]["quota_usage"] == 1


def test_container_creation_limit_per_day(emu: RunningEmulator, client: httpx.Client) -> None:
    emu.state.configure(containers_per_day=2)
    create_ok(client)
    create_ok(client)
    assert err(create(client))["code"] == 4
    emu.state.advance(86401)
    assert create(client).status_code == 200


# --------------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    ("params", "code", "subcode", "words"),
    [
        ({"image_url": IMG, "is_carousel_item": "true", "caption": "x"}, 100, None, "caption"),
        ({"media_type": "REELS", "video_url": VID, "alt_text": "x"}, 100, None, "alt_text"),
        ({"media_type": "STORIES", "image_url": IMG, "alt_text": "x"}, 100, None, "alt_text"),
        ({"image_url": IMG, "share_to_feed": "true"}, 100, None, "share_to_feed"),
        (
            {
                "media_type": "VIDEO",
                "video_url": VID,
                "is_carousel_item": "true",
                "user_tags": '[{"username": "a"}]',
            },
            100,
            None,
            "user_tags",
        ),
        ({"image_url": IMG, "collaborators": '["a","b","c","d"]'}, 100, None, "collaborators"),
        ({"image_url": IMG, "caption": "x" * 2201}, 36004, 2207010, "caption"),
        ({"image_url": IMG, "caption": " ".join(f"#t{i}" for i in range(31))}, 36004, 2207010, ""),
        ({"image_url": IMG, "caption": " ".join(f"@u{i}" for i in range(21))}, 100, 2207040, ""),
        ({"image_url": IMG, "user_tags": '[{"username": "a", "x": 1.5, "y": 0}]'}, 100, None, "x"),
        ({"image_url": IMG, "user_tags": '[{"username": "a"}]'}, 100, None, "user_tags"),
        ({"image_url": IMG, "user_tags": "not json"}, 100, None, "user_tags"),
        ({"image_url": IMG, "bogus": "1"}, 100, None, "bogus"),
        ({"image_url": "ftp://cdn.example.com/a.jpg"}, 100, None, "http"),
        ({"media_type": "VIDEO", "video_url": VID}, 100, 2207023, "REELS"),
        ({"media_type": "GIF", "image_url": IMG}, 100, 2207023, "GIF"),
        ({"media_type": "CAROUSEL", "children": "1,2", "location_id": "abc"}, 100, None, ""),
    ],
)
def test_container_parameter_validation(
    client: httpx.Client, params: dict[str, str], code: int, subcode: int | None, words: str
) -> None:
    resp = client.post(f"/{ACCT}/media", data=params)
    assert resp.status_code == 400
    e = err(resp)
    assert e["code"] == code
    assert e.get("error_subcode") == subcode
    assert words in e["message"]
    if code == 100 and subcode is None:
        assert e["message"].startswith("Invalid parameter")


def test_carousel_children_rules_and_publish(emu: RunningEmulator, client: httpx.Client) -> None:
    one = create_ok(client, image_url=IMG, is_carousel_item="true", alt_text="first")
    two = create_ok(client, media_type="VIDEO", video_url=VID, is_carousel_item="true")
    e = err(create(client, media_type="CAROUSEL", children=one))
    assert (e["code"], e["error_subcode"]) == (100, 2207028)
    e = err(create(client, media_type="CAROUSEL", children=",".join([one] * 6 + [two] * 5)))
    assert (e["code"], e["error_subcode"]) == (100, 2207028)
    e = err(create(client, media_type="CAROUSEL", children=f"{one},{two}"))
    assert e["code"] == 100 and "not FINISHED" in e["message"]

    emu.state.advance(5)
    single = create_ok(client)
    emu.state.advance(5)
    e = err(create(client, media_type="CAROUSEL", children=f"{one},{single}"))
    assert "is_carousel_item" in e["message"]
    e = err(publish(client, one))
    assert e["code"] == 100 and "carousel item" in e["message"]

    parent = create_ok(client, media_type="CAROUSEL", children=f"{one},{two}", caption="Looks")
    emu.state.advance(1)
    media_id = publish(client, parent).json()["id"]
    info = client.get(
        f"/{media_id}", params={"fields": "media_type,caption,children{media_type,alt_text}"}
    ).json()
    assert info["media_type"] == "CAROUSEL_ALBUM" and info["caption"] == "Looks"
    kinds = [(c["media_type"], c.get("alt_text")) for c in info["children"]["data"]]
    assert kinds == [("IMAGE", "first"), ("VIDEO", None)]
    assert status(client, one)["status_code"] == "PUBLISHED"
    usage = client.get(f"/{ACCT}/content_publishing_limit").json()
    assert usage["data"][0]["quota_usage"] == 1  # a carousel is one post


def test_reel_and_story_media_types(emu: RunningEmulator, client: httpx.Client) -> None:
    reel = create_ok(client, media_type="REELS", video_url=VID, share_to_feed="true")
    story = create_ok(client, media_type="STORIES", image_url=IMG)
    emu.state.advance(5)
    reel_id = publish(client, reel).json()["id"]
    story_id = publish(client, story).json()["id"]
    fields = {"fields": "media_type,media_product_type,permalink"}
    reel_info = client.get(f"/{reel_id}", params=fields).json()
    assert (reel_info["media_type"], reel_info["media_product_type"]) == ("VIDEO", "REELS")
    assert "/reel/" in reel_info["permalink"]
    story_info = client.get(f"/{story_id}", params=fields).json()
    assert (story_info["media_type"], story_info["media_product_type"]) == ("IMAGE", "STORY")
    feed = client.get(f"/{ACCT}/media").json()["data"]
    assert [m["id"] for m in feed] == [reel_id]  # stories are not on the media edge
    assert [m["id"] for m in client.get(f"/{ACCT}/stories").json()["data"]] == [story_id]


# --------------------------------------------------------------------------- resumable upload
def test_resumable_upload(emu: RunningEmulator, client: httpx.Client) -> None:
    resp = create(client, media_type="REELS", upload_type="resumable", caption="Local")
    body = resp.json()
    cid, uri = body["id"], body["uri"]
    assert uri == f"{emu.base_url}/ig-api-upload/{V}/{cid}"
    emu.state.advance(60)
    assert status(client, cid)["status_code"] == "IN_PROGRESS"  # nothing uploaded yet
    assert publish(client, cid).json()["error"]["code"] == 9007

    data = os.urandom(4096)
    headers = {"Authorization": "OAuth tok", "offset": "0", "file_size": str(len(data) + 1)}
    bad = httpx.post(uri, headers=headers, content=data)
    assert bad.status_code == 400
    assert bad.json()["debug_info"]["type"] == "ProcessingFailedError"
    assert bad.json()["debug_info"]["retriable"] is False
    bad = httpx.post(uri, headers={**headers, "offset": "7", "file_size": "4103"}, content=data)
    assert bad.status_code == 400

    ok = httpx.post(uri, headers={**headers, "file_size": str(len(data))}, content=data)
    assert ok.json() == {"success": True, "message": "Upload successful."}
    assert "X-App-Usage" in ok.headers
    snap = emu.state.containers[cid]
    assert snap["uploaded_bytes"] == len(data) and snap["file_size"] == len(data)
    emu.state.advance(5)
    media_id = publish(client, cid).json()["id"]
    info = client.get(f"/{media_id}", params={"fields": "media_product_type"}).json()
    assert info["media_product_type"] == "REELS"

    by_url = create(client, media_type="STORIES", upload_type="resumable").json()
    ok = httpx.post(
        by_url["uri"], headers={"Authorization": "OAuth tok", "file_url": f"{VID}?emu_fail=2207026"}
    )
    assert ok.json()["success"] is True
    emu.state.advance(5)
    assert status(client, by_url["id"])["status"] == "Error: Media upload has failed with error code 2207026"


# --------------------------------------------------------------------------- comments
def test_comments_paging_replies_hide_delete(emu: RunningEmulator, client: httpx.Client) -> None:
    media_id = published_image(emu, client)
    for i in range(60):
        emu.state.add_comment(media_id, f"comment {i}", username=f"fan{i}")
    fields = "id,text,username,timestamp,like_count,replies{id}"
    texts: list[str] = []
    resp = client.get(f"/{media_id}/comments", params={"fields": fields})
    pages = 0
    while True:
        page = resp.json()
        pages += 1
        texts += [c["text"] for c in page["data"]]
        if "next" not in page.get("paging", {}):
            break
        resp = client.get(page["paging"]["next"])
    assert pages == 3 and len(texts) == 60
    assert texts[0] == "comment 59" and texts[-1] == "comment 0"  # newest first
    big = client.get(f"/{media_id}/comments", params={"limit": 500}).json()
    assert len(big["data"]) == 50 and "next" in big["paging"]

    own = client.post(f"/{media_id}/comments", data={"message": "More at the link"}).json()["id"]
    first = client.get(f"/{media_id}/comments", params={"fields": "username,text", "limit": 1})
    assert first.json()["data"][0] == {
        "id": own,
        "username": f"user{ACCT}",
        "text": "More at the link",
    }
    reply = client.post(f"/{own}/replies", data={"message": "thanks"}).json()["id"]
    replies = client.get(f"/{own}/replies", params={"fields": "text"}).json()["data"]
    assert replies == [{"id": reply, "text": "thanks"}]
    assert err(client.post(f"/{reply}/replies", data={"message": "nested"}))["code"] == 100
    assert client.post(f"/{own}", data={"hide": "true"}).json() == {"success": True}
    assert err(client.post(f"/{own}/replies", data={"message": "x"}))["code"] == 100
    assert client.delete(f"/{own}").json() == {"success": True}
    assert err(client.get(f"/{own}"))["error_subcode"] == 33
    assert len(emu.state.comments(media_id)) == 60


def test_comment_answer_then_error(emu: RunningEmulator, client: httpx.Client) -> None:
    media_id = published_image(emu, client)
    emu.state.inject("comments", 20, 1772107, method="POST", after=True)
    resp = client.post(f"/{media_id}/comments", data={"message": "first!"})
    e = err(resp)
    assert (resp.status_code, e["code"], e["error_subcode"]) == (400, 20, 1772107)
    [created] = emu.state.comments(media_id)
    assert created["text"] == "first!" and created["username"] == f"user{ACCT}"

    emu.state.configure(comment_error_after_create_rate=1.0, comment_error_http500=True)
    resp = client.post(f"/{media_id}/comments", data={"message": "second"})
    assert resp.status_code == 500 and err(resp)["is_transient"] is True
    assert len(emu.state.comments(media_id)) == 2
    assert client.get(f"/{media_id}/comments").status_code == 200  # reads unaffected


# --------------------------------------------------------------------------- usage / throttling
def test_usage_headers_present_and_rising(emu: RunningEmulator, client: httpx.Client) -> None:
    emu.state.set_usage_budget(ACCT, calls_per_hour=20)
    emu.state.set_app_usage_budget(100)
    seen = []
    for _ in range(4):
        resp = client.get("/me", params={"fields": "id,username"})
        assert resp.status_code == 200
        app_usage = json.loads(resp.headers["X-App-Usage"])
        assert set(app_usage) == {"call_count", "total_cputime", "total_time"}
        seen.append((buc(resp)["call_count"], app_usage["call_count"]))
    assert seen == [(5, 1), (10, 2), (15, 3), (20, 4)]
    entry = buc(client.get(f"/{ACCT}/media"))
    assert entry["type"] == "instagram" and entry["estimated_time_to_regain_access"] == 0
    error = client.get(f"/{ACCT}/nonexistent_edge")
    assert error.status_code == 400 and "X-Business-Use-Case-Usage" in error.headers


def test_throttling_at_100_percent(emu: RunningEmulator, client: httpx.Client) -> None:
    emu.state.set_usage_budget(ACCT, calls_per_hour=3)
    for _ in range(3):
        assert client.get(f"/{ACCT}/media").status_code == 200
    resp = client.get(f"/{ACCT}/media")
    e = err(resp)
    assert (e["code"], e["type"], e["is_transient"]) == (80002, "OAuthException", True)
    assert buc(resp)["estimated_time_to_regain_access"] > 0
    assert buc(resp)["call_count"] >= 100
    emu.state.advance(3601)
    assert client.get(f"/{ACCT}/media").status_code == 200

    emu.state.set_app_usage_budget(1)
    client.get("/me")
    assert err(client.get("/me"))["code"] == 4


def test_forced_usage_and_throttle(emu: RunningEmulator, client: httpx.Client) -> None:
    emu.state.force_usage(ACCT, 95)
    resp = client.get(f"/{ACCT}/media")
    assert resp.status_code == 200 and buc(resp)["call_count"] == 95
    emu.state.force_usage(ACCT, 100, regain_minutes=5)
    resp = client.get(f"/{ACCT}/media")
    assert err(resp)["code"] == 80002
    assert buc(resp)["estimated_time_to_regain_access"] == 5
    emu.state.advance(301)
    assert client.get(f"/{ACCT}/media").status_code == 200

    emu.state.force_throttle(ACCT, 120)
    assert err(client.get(f"/{ACCT}/media"))["code"] == 80002
    emu.state.advance(121)
    assert client.get(f"/{ACCT}/media").status_code == 200
    emu.state.force_app_throttle(60)
    assert err(client.get(f"/{ACCT}/media"))["code"] == 4


# --------------------------------------------------------------------------- faults
def test_dropped_connection(emu: RunningEmulator, client: httpx.Client) -> None:
    emu.state.configure(drop_rate=1.0, fault_endpoints=["media_publish"])
    cid = create_ok(client)
    emu.state.advance(1)
    with pytest.raises(httpx.RemoteProtocolError):
        publish(client, cid)
    assert emu.state.published_media() == []
    assert emu.state.requests[-1]["outcome"] == "dropped"
    assert httpx.get(f"{emu.base_url}/_emulator/health").json()["ok"] is True

    emu.state.configure(drop_rate=0.0, drop_after_rate=1.0)
    with pytest.raises(httpx.RemoteProtocolError):
        publish(client, cid)
    assert len(emu.state.published_media()) == 1  # done, but the answer was lost


def test_late_publish_answer_after_client_timeout() -> None:
    started = time.monotonic()
    emu = RunningEmulator().start()
    assert time.monotonic() - started < 0.5
    try:
        emu.state.configure(late_publish_rate=1.0, late_publish_delay_s=30)
        headers = {"Authorization": "Bearer t"}
        with httpx.Client(base_url=f"{emu.base_url}/{V}", headers=headers) as c:
            cid = create_ok(c)
            emu.state.advance(1)
            with pytest.raises(httpx.ReadTimeout):
                c.post(f"/{ACCT}/media_publish", data={"creation_id": cid}, timeout=0.3)
            assert status(c, cid)["status_code"] == "PUBLISHED"
        assert len(emu.state.published_media()) == 1
        outcomes = [r["outcome"] for r in emu.state.requests if r["endpoint"] == "media_publish"]
        assert outcomes == ["late"]
    finally:
        stopping = time.monotonic()
        emu.stop()  # the delayed answer is still pending; stopping must not wait for it
        assert time.monotonic() - stopping < 1.5


def test_http_500_faults_and_endpoint_filter(emu: RunningEmulator, client: httpx.Client) -> None:
    emu.state.configure(error500_rate=1.0, fault_endpoints=["container_status"])
    cid = create_ok(client)  # not a faulted endpoint
    resp = client.get(f"/{cid}", params={"fields": "status_code"})
    e = err(resp)
    assert resp.status_code == 500 and e["code"] in (1, 2) and e["is_transient"] is True
    emu.state.configure(error500_rate=0.0, latency_s=0.2, fault_endpoints=None)
    started = time.monotonic()
    assert client.get(f"/{cid}").status_code == 200
    assert time.monotonic() - started >= 0.2


def test_seeded_faults_are_reproducible() -> None:
    def outcomes(seed: int) -> list[bool]:
        state = EmulatorState(seed=seed)
        state.configure(drop_rate=0.5)
        return [state.roll_faults("media", "POST").drop for _ in range(40)]

    assert outcomes(7) == outcomes(7)
    assert outcomes(7) != outcomes(8)
    assert 5 < sum(outcomes(7)) < 35


def test_one_shot_injection(emu: RunningEmulator, client: httpx.Client) -> None:
    emu.state.inject("media_publish", 4, 2207051, account=OTHER)
    emu.state.inject("media_publish", -1, 2207001, is_transient=True, count=2)
    cid = create_ok(client)
    emu.state.advance(1)
    for _ in range(2):
        e = err(publish(client, cid))
        assert (e["code"], e["error_subcode"], e["is_transient"]) == (-1, 2207001, True)
    assert publish(client, cid).status_code == 200
    other = create_ok(client, OTHER)
    emu.state.advance(1)
    e = err(publish(client, other, OTHER))
    assert (e["code"], e["error_subcode"]) == (4, 2207051)
    emu.state.inject("me", 80002)
    e = err(client.get("/me"))
    assert (e["code"], e["is_transient"]) == (80002, True)  # as Meta marks throttling
    with pytest.raises(ValueError):
        emu.state.inject("no_such_endpoint", 1)


def test_fresh_object_briefly_missing(emu: RunningEmulator, client: httpx.Client) -> None:
    emu.state.configure(new_object_not_found_s=5)
    cid = create_ok(client)
    e = err(client.get(f"/{cid}", params={"fields": "status_code"}))
    assert (e["code"], e["error_subcode"]) == (100, 33)
    emu.state.advance(6)
    assert status(client, cid)["status_code"] == "FINISHED"


# --------------------------------------------------------------------------- auth
def test_tokens_bound_expired_and_missing(emu: RunningEmulator, client: httpx.Client) -> None:
    emu.state.add_account(ACCT, username="shop", token="good")
    resp = client.get(f"/{ACCT}", params={"fields": "username"})  # client sends "tok"
    assert err(resp)["code"] == 190 and "WWW-Authenticate" in resp.headers
    good = {"Authorization": "Bearer good"}
    assert client.get("/me", params={"fields": "username"}, headers=good).json() == {
        "id": ACCT,
        "username": "shop",
    }
    emu.state.expire_token(ACCT)
    e = err(client.get(f"/{ACCT}/media", headers=good))
    assert (e["code"], e["error_subcode"], e["type"]) == (190, 463, "OAuthException")
    emu.state.set_token(ACCT, "new")
    assert client.get(f"/{ACCT}/media", headers={"Authorization": "OAuth new"}).status_code == 200
    bare = httpx.get(f"{emu.base_url}/{V}/{OTHER}")
    assert err(bare)["code"] == 104


def test_refresh_access_token(emu: RunningEmulator) -> None:
    emu.state.add_account(ACCT, username="shop", token="old")
    resp = httpx.get(
        f"{emu.base_url}/refresh_access_token",
        params={"grant_type": "ig_refresh_token", "access_token": "old"},
    )
    body = resp.json()
    assert body["token_type"] == "bearer" and body["expires_in"] == 60 * 86400
    fresh = {"Authorization": f"Bearer {body['access_token']}"}
    assert httpx.get(f"{emu.base_url}/{V}/me", headers=fresh).json() == {"id": ACCT}
    assert body["access_token"] not in json.dumps(emu.state.requests)


def test_me_resolves_to_the_tokens_account(emu: RunningEmulator, client: httpx.Client) -> None:
    emu.state.add_account(ACCT, username="first")
    emu.state.add_account(OTHER, username="second", token="t2", followers_count=42)
    fields = {"fields": "id,username,followers_count,media_count"}
    assert client.get("/me", params=fields).json()["username"] == "first"
    me = httpx.get(f"{emu.base_url}/{V}/me", params={**fields, "access_token": "t2"}).json()
    assert me == {"id": OTHER, "username": "second", "followers_count": 42, "media_count": 0}
    e = err(client.get("/me", params={"fields": "nope"}))
    assert e["code"] == 100 and "nonexisting field" in e["message"]


def test_tokens_never_in_request_log(emu: RunningEmulator) -> None:
    secret = "EAAB-very-secret-token"
    url = f"{emu.base_url}/{V}/{ACCT}/media"
    httpx.post(url, data={"image_url": IMG, "access_token": secret})
    httpx.get(url, params={"access_token": secret, "appsecret_proof": "p"})
    httpx.get(url, headers={"Authorization": f"OAuth {secret}"})
    log = emu.state.requests
    assert len(log) == 3 and secret not in json.dumps(log)
    assert log[0]["params"] == {"image_url": IMG}
    assert {"t", "method", "path", "endpoint", "account", "params", "status", "outcome"} <= set(
        log[0]
    )
    assert (log[0]["endpoint"], log[1]["endpoint"], log[0]["account"]) == (
        "media",
        "media_list",
        ACCT,
    )
    assert secret not in httpx.get(f"{emu.base_url}/_emulator/requests").text


def test_json_body_and_paging_of_media(emu: RunningEmulator, client: httpx.Client) -> None:
    ids = []
    for i in range(5):
        resp = client.post(f"/{ACCT}/media", json={"image_url": IMG, "caption": f"post {i}"})
        emu.state.advance(1)
        ids.append(publish(client, resp.json()["id"]).json()["id"])
    page = client.get(f"/{ACCT}/media", params={"limit": 2, "fields": "caption"}).json()
    assert [m["caption"] for m in page["data"]] == ["post 4", "post 3"]
    rest = client.get(page["paging"]["next"]).json()
    assert [m["id"] for m in rest["data"]] == [ids[2], ids[1]]
    last = client.get(rest["paging"]["next"]).json()
    assert [m["id"] for m in last["data"]] == [ids[0]] and "next" not in last["paging"]


# --------------------------------------------------------------------------- control API
def test_control_api_over_http(emu: RunningEmulator, client: httpx.Client) -> None:
    ctl = httpx.Client(base_url=f"{emu.base_url}/_emulator")
    assert ctl.get("/health").json()["ok"] is True
    added = ctl.post("/accounts", json={"ig_user_id": OTHER, "username": "brand", "quota_total": 1})
    assert added.json()["username"] == "brand"
    snap = ctl.post(
        "/config",
        json={"default_processing_s": {"image": 100}, "usage_budget": {"calls_per_hour": 1000}},
    ).json()
    assert snap["default_processing_s"]["image"] == 100
    assert ctl.post("/config", json={"no_such_switch": 1}).status_code == 400
    assert ctl.post("/inject", json={"endpoint": "me", "code": 2, "http_status": 500}).json()
    assert client.get("/me").status_code == 500

    cid = create_ok(client, OTHER)
    assert ctl.get("/containers").json()[cid]["status_code"] == "IN_PROGRESS"
    assert ctl.post("/advance", json={"seconds": 101}).json()["clock_offset_s"] == 101
    assert publish(client, cid, OTHER).status_code == 200
    [media] = ctl.get("/media", params={"account": OTHER}).json()
    comment = ctl.post("/comments", json={"media_id": media["id"], "text": "hi"}).json()["id"]
    assert [c["id"] for c in ctl.get("/comments").json()] == [comment]
    publishes = ctl.get("/requests", params={"endpoint": "media_publish"}).json()
    assert [r["outcome"] for r in publishes] == ["ok"]
    assert "X-App-Usage" not in ctl.get("/requests").headers

    assert ctl.post("/reset").json() == {"ok": True}
    assert ctl.get("/media").json() == [] and ctl.get("/requests").json() == []
    assert ctl.get("/nope").status_code == 404
    ctl.close()


def test_restart_keeps_port_and_state() -> None:
    emu = RunningEmulator().start()
    try:
        url = emu.base_url
        emu.state.add_account(ACCT, username="kept")
        emu.stop()
        assert not emu.running
        emu.start()
        assert emu.base_url == url
        me = httpx.get(f"{url}/{V}/me", params={"access_token": "x", "fields": "username"})
        assert me.json()["username"] == "kept"
    finally:
        emu.stop()


def test_serve_blocks_until_sigterm() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    repo = Path(__file__).resolve().parents[2]
    command = f"from scheduler.emulator import serve; serve('127.0.0.1', {port})"
    with subprocess.Popen(
        [sys.executable, "-c", command], cwd=repo, stderr=subprocess.PIPE, text=True
    ) as proc:
        try:
            assert proc.stderr is not None
            assert f"http://127.0.0.1:{port}" in proc.stderr.readline()
            assert httpx.get(f"http://127.0.0.1:{port}/_emulator/health").json()["ok"] is True
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=5) == 0
        finally:
            if proc.poll() is None:
                proc.kill()


def test_a_restarted_emulator_never_hands_out_an_id_again() -> None:
    """Meta's ids never repeat: a fresh emulator (a restart on the same port) starts its ids
    from a random point, so ids a daemon stored from the last run cannot come back."""
    seen: list[str] = []
    for _ in range(3):
        with RunningEmulator() as running, httpx.Client(
            base_url=f"{running.base_url}/{V}", headers={"Authorization": "Bearer tok"}, timeout=5
        ) as c:
            seen += [create_ok(c), create_ok(c)]
    assert len(set(seen)) == len(seen) == 6
    assert all(17_990_000_000_000_000 < int(i) < 18_000_000_000_000_000 for i in seen)
