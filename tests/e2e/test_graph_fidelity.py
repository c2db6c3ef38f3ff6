"""GraphClient against the emulator over real HTTP: the answers issue 12 asks igsched to read
right (container ERROR text, both X-App-Usage shapes, a lost publish answer and what a retry
of the same container gets) and the media walk that finds a post after a lost answer."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from scheduler.emulator import RunningEmulator
from scheduler.graph import (
    CallRecord,
    ErrorClass,
    GraphClient,
    GraphError,
    GraphUnavailable,
    UsageFigures,
    classify_container_error,
)

TOKEN = "IGAAJemulatorTOKEN0123456789abcdefXYZ"
IG = "17841400000000001"
VERSION = "v23.0"
IMG = "https://cdn.example.com/a.jpg"


@pytest.fixture
def emu() -> Any:
    with RunningEmulator() as running:
        running.state.add_account(IG, username="shop", token=TOKEN)
        running.state.configure(default_processing_s={"image": 0.0, "video": 0.0})
        yield running


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def _endpoint_calls(emu: Any, endpoint: str) -> list[dict[str, Any]]:
    return [r for r in emu.state.requests if r["endpoint"] == endpoint]


# --------------------------------------------------------------------------- container ERROR
@pytest.mark.parametrize(
    ("subcode", "expected"),
    [(2207001, ErrorClass.TRANSIENT), (2207003, ErrorClass.TRANSIENT),
     (2207032, ErrorClass.RECREATE), (2207053, ErrorClass.RECREATE), (2207020, ErrorClass.RECREATE),
     (2207052, ErrorClass.PERMANENT), (2207026, ErrorClass.PERMANENT)],
)
def test_container_error_text_is_metas_and_classifies(emu: Any, subcode: int, expected: ErrorClass) -> None:
    """Each subcode can be injected through a media rule (the control API's `media_rules`)."""
    emu.state.add_media_rule("broken", fail_subcode=subcode)

    async def main() -> str | None:
        async with GraphClient(emu.base_url, VERSION, 10.0) as client:
            cid = await client.create_container(IG, TOKEN, {"image_url": "https://cdn.example.com/broken.jpg"})
            st = await client.container_status(cid, TOKEN)
            assert st.status_code == "ERROR"
            return st.status

    status = run(main())
    assert status == f"Error: Media upload has failed with error code {subcode}"
    verdict = classify_container_error(status)
    assert (verdict.subcode, verdict.error_class) == (subcode, expected)


def test_container_error_through_the_control_api(emu: Any) -> None:
    httpx.post(f"{emu.base_url}/_emulator/config",
               json={"media_rules": [{"substring": "clip", "fail_subcode": 2207053}]}).raise_for_status()

    async def main() -> str | None:
        async with GraphClient(emu.base_url, VERSION, 10.0) as client:
            cid = await client.create_container(
                IG, TOKEN, {"video_url": "https://cdn.example.com/clip.mp4", "media_type": "REELS"})
            return (await client.container_status(cid, TOKEN)).status

    assert classify_container_error(run(main())).error_class is ErrorClass.RECREATE


# --------------------------------------------------------------------------- X-App-Usage
@pytest.mark.parametrize("shape", ["facebook", "instagram"])
def test_call_records_carry_app_usage_in_both_shapes(emu: Any, shape: str) -> None:
    emu.state.configure(app_usage_shape=shape)
    emu.state.set_app_usage_budget(10)  # each call is 10 % of the app's hour
    records: list[CallRecord] = []

    async def main() -> None:
        async with GraphClient(emu.base_url, VERSION, 10.0, on_call=records.append) as client:
            for _ in range(4):
                await client.me(TOKEN)

    run(main())
    raw = httpx.get(f"{emu.base_url}/{VERSION}/me", headers={"Authorization": f"Bearer {TOKEN}"})
    keys = set(json.loads(raw.headers["x-app-usage"]))
    assert keys == ({"call_volume", "cpu_time"} if shape == "instagram"
                    else {"call_count", "total_cputime", "total_time"})
    # the fourth call's answer counts the four calls: 40 %, CPU a fixed 60 % share of it
    app = records[-1].usage.app
    assert app == (UsageFigures(40, 24, 0) if shape == "instagram" else UsageFigures(40, 24, 32))
    assert [r.usage.app.call_count for r in records if r.usage.app] == [10, 20, 30, 40]
    assert records[-1].usage.max_pct() == 40


def test_new_switches_through_the_control_api(emu: Any) -> None:
    with pytest.raises(ValueError, match="app_usage_shape"):
        emu.state.configure(app_usage_shape="graph")
    url = f"{emu.base_url}/_emulator/config"
    answer = httpx.post(url, json={"app_usage_shape": "instagram", "republish_answer": "same_id",
                                   "published_status_lag_s": 30})
    assert answer.status_code == 200, answer.text
    snapshot = answer.json()
    assert snapshot["app_usage_shape"] == "instagram"
    assert snapshot["faults"]["republish_answer"] == "same_id"
    assert snapshot["faults"]["published_status_lag_s"] == 30
    for bad in ({"app_usage_shape": "graph"}, {"republish_answer": "twice"}):
        refused = httpx.post(url, json=bad)
        assert refused.status_code == 400 and next(iter(bad)) in refused.json()["error"]


# --------------------------------------------------------------------------- lost answers
async def _finished_container(client: GraphClient, caption: str) -> str:
    cid = await client.create_container(IG, TOKEN, {"image_url": IMG, "caption": caption})
    assert (await client.container_status(cid, TOKEN)).status_code == "FINISHED"
    return cid


def test_lost_publish_answer_then_2207008_on_the_retry(emu: Any) -> None:
    """The scenario of issue 12: the publish goes live but its answer is lost; a retry of the
    same container is answered 24/2207008; the container says PUBLISHED; one media only."""
    emu.state.configure(republish_answer="2207008")

    async def main() -> tuple[GraphUnavailable, GraphError, str]:
        async with GraphClient(emu.base_url, VERSION, 10.0) as client:
            cid = await _finished_container(client, "lost answer")
            emu.state.inject_fault("media_publish", "drop_after", account=IG)
            with pytest.raises(GraphUnavailable) as lost:
                await client.publish(IG, TOKEN, cid)
            with pytest.raises(GraphError) as retry:
                await client.publish(IG, TOKEN, cid)
            return lost.value, retry.value, (await client.container_status(cid, TOKEN)).status_code

    lost, retry, status = run(main())
    assert lost.error_class is ErrorClass.AMBIGUOUS
    assert (retry.code, retry.subcode, retry.error_class) == (24, 2207008, ErrorClass.RETRY_THEN_RECREATE)
    assert status == "PUBLISHED"
    [media] = emu.state.published_media(IG)
    assert media["caption"] == "lost answer"
    assert [r["outcome"] for r in _endpoint_calls(emu, "media_publish")] == ["dropped", "error"]


def test_status_lag_lost_answer_retry_2207008_and_the_media_walk_finds_it(emu: Any) -> None:
    """Meta's view catching up: after the lost answer the container still says FINISHED, so
    only the account's media proves the post live; a retry gets 24/2207008, not a 2nd post."""
    emu.state.configure(republish_answer="2207008", published_status_lag_s=60)

    async def main() -> tuple[list[str], GraphError, list[dict[str, Any]], list[str]]:
        async with GraphClient(emu.base_url, VERSION, 10.0) as client:
            started = datetime.fromtimestamp(int(emu.state.now()), UTC)
            cid = await _finished_container(client, "lagging")
            emu.state.inject_fault("media_publish", "drop_after", account=IG)
            with pytest.raises(GraphUnavailable):
                await client.publish(IG, TOKEN, cid)
            seen = [(await client.container_status(cid, TOKEN)).status_code]
            with pytest.raises(GraphError) as retry:
                await client.publish(IG, TOKEN, cid)
            found = [m async for m in client.media_back_to(IG, TOKEN, started)]
            emu.state.advance(61)
            seen.append((await client.container_status(cid, TOKEN)).status_code)
            return seen[:1], retry.value, found, seen[1:]

    during, retry, found, after = run(main())
    assert during == ["FINISHED"] and after == ["PUBLISHED"]
    assert (retry.code, retry.subcode) == (24, 2207008)
    [media] = emu.state.published_media(IG)
    assert [(m["id"], m["caption"]) for m in found] == [(media["id"], "lagging")]
    assert emu.state.containers[media["container_id"]]["status_code"] == "PUBLISHED"  # the truth


@pytest.mark.parametrize(
    ("answer", "code", "subcode"),
    [("already_published", 100, None), ("2207008", 24, 2207008), ("2207006", 24, 2207006)],
)
def test_republishing_a_published_container_answers_an_error(
    emu: Any, answer: str, code: int, subcode: int | None
) -> None:
    if answer != "already_published":  # the default
        emu.state.configure(republish_answer=answer)

    async def main() -> GraphError:
        async with GraphClient(emu.base_url, VERSION, 10.0) as client:
            cid = await _finished_container(client, "twice")
            await client.publish(IG, TOKEN, cid)
            with pytest.raises(GraphError) as again:
                await client.publish(IG, TOKEN, cid)
            return again.value

    err = run(main())
    assert (err.code, err.subcode) == (code, subcode)
    assert len(emu.state.published_media(IG)) == 1


def test_republishing_can_answer_the_first_media_id(emu: Any) -> None:
    emu.state.configure(republish_answer="same_id")

    async def main() -> tuple[str, str]:
        async with GraphClient(emu.base_url, VERSION, 10.0) as client:
            cid = await _finished_container(client, "same")
            return await client.publish(IG, TOKEN, cid), await client.publish(IG, TOKEN, cid)

    first, second = run(main())
    assert first == second
    assert len(emu.state.published_media(IG)) == 1
    with pytest.raises(ValueError, match="republish_answer"):
        emu.state.configure(republish_answer="twice")


# --------------------------------------------------------------------------- media walk
def _publish_directly(emu: Any, caption: str, *, story: bool = False) -> str:
    params = {"image_url": IMG, "caption": caption} if not story else {"image_url": IMG, "media_type": "STORIES"}
    cid = emu.state.create_container(IG, params, "unused")["id"]
    return str(emu.state.publish(IG, {"creation_id": cid}).id)


def _burst(emu: Any, old: int, burst: int) -> tuple[datetime, list[str]]:
    """`old` media, ten minutes' gap, then `burst` media a second apart (emulator clock)."""
    emu.state.configure(containers_per_day=None)
    emu.state.set_quota(IG, quota_total=1000)
    for i in range(old):
        _publish_directly(emu, f"old {i}")
        emu.state.advance(1)
    emu.state.advance(600)
    start = datetime.fromtimestamp(int(emu.state.now()), UTC)
    ids = []
    for i in range(burst):
        ids.append(_publish_directly(emu, f"burst {i}"))
        emu.state.advance(1)
    return start, ids


@pytest.mark.parametrize(("page_size", "pages"), [(25, 3), (50, 2), (100, 1)])
def test_media_back_to_pages_through_a_burst_of_more_than_25(emu: Any, page_size: int, pages: int) -> None:
    start, ids = _burst(emu, old=30, burst=60)
    before = len(emu.state.requests)

    async def main() -> list[dict[str, Any]]:
        async with GraphClient(emu.base_url, VERSION, 10.0) as client:
            return [m async for m in client.media_back_to(IG, TOKEN, start, page_size=page_size)]

    items = run(main())
    assert [m["id"] for m in items] == ids[::-1]  # newest first, every one of the burst
    assert items[-1]["caption"] == "burst 0" and items[0]["caption"] == "burst 59"
    assert all(set(m) == {"id", "caption", "timestamp"} for m in items)
    # pages until the first older item, no further
    walk = emu.state.requests[before:]
    assert [r["endpoint"] for r in walk] == ["media_list"] * pages
    assert all(r["params"]["limit"] == str(page_size) for r in walk)


def test_media_back_to_stops_when_the_caller_does_and_at_the_end(emu: Any) -> None:
    _, ids = _burst(emu, old=0, burst=30)

    async def main() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        async with GraphClient(emu.base_url, VERSION, 10.0) as client:
            first: list[dict[str, Any]] = []
            async for m in client.media_back_to(IG, TOKEN, datetime(2000, 1, 1), page_size=10,
                                                fields=("id",)):
                first.append(m)
                if len(first) == 3:
                    break
            every = [m async for m in client.media_back_to(IG, TOKEN, datetime(2000, 1, 1), page_size=10)]
            return first, every

    before = len(emu.state.requests)
    first, every = run(main())
    assert [m["id"] for m in first] == ids[::-1][:3]
    assert set(first[0]) == {"id", "timestamp"}  # the bound always needs the time
    assert [m["id"] for m in every] == ids[::-1]  # no older media: to the last page
    assert len(emu.state.requests) - before == 1 + 3  # one page for the first, three for all


def test_media_back_to_lists_stories_apart(emu: Any) -> None:
    start = datetime.fromtimestamp(int(emu.state.now()), UTC)
    feed = _publish_directly(emu, "feed")
    story = _publish_directly(emu, "", story=True)

    async def main() -> tuple[list[str], list[str]]:
        async with GraphClient(emu.base_url, VERSION, 10.0) as client:
            stories = [m["id"] async for m in client.media_back_to(IG, TOKEN, start, stories=True)]
            media = [m["id"] async for m in client.media_back_to(IG, TOKEN, start)]
            return stories, media

    stories, media = run(main())
    assert (stories, media) == ([story], [feed])
    assert [r["endpoint"] for r in emu.state.requests[-2:]] == ["stories", "media_list"]
