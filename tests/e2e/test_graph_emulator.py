"""End to end: GraphClient against the emulator (scheduler.emulator) over real HTTP."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from scheduler.graph import (
    CallRecord,
    ContainerStatus,
    ErrorClass,
    GraphClient,
    GraphError,
    GraphUnavailable,
    call_context,
)

emulator = pytest.importorskip("scheduler.emulator")

TOKEN = "IGAAJemulatorTOKEN0123456789abcdefXYZ"
IG = "17841400000000001"
VERSION = "v23.0"


@pytest.fixture
def emu() -> Any:
    with emulator.RunningEmulator() as running:
        running.state.add_account(IG, username="shop", token=TOKEN)
        yield running


async def _until_finished(
    client: GraphClient, emu: Any, container_id: str, tries: int = 40
) -> ContainerStatus:
    status = await client.container_status(container_id, TOKEN)
    for _ in range(tries):
        if status.status_code != "IN_PROGRESS":
            break
        emu.state.advance(1.0)  # the emulator's clock, not a real sleep
        status = await client.container_status(container_id, TOKEN)
    return status


def test_create_poll_publish_against_the_emulator(emu: Any) -> None:
    records: list[CallRecord] = []

    async def main() -> tuple[str, ErrorClass, Any]:
        async with GraphClient(emu.base_url, VERSION, 10.0, on_call=records.append) as client:
            with call_context(account="shop", post_id=1):
                me = await client.me(TOKEN)
                assert me == {"id": IG, "username": "shop"}
                cid = await client.create_container(
                    IG, TOKEN, {"image_url": "https://cdn.example.com/a.jpg", "caption": "Hi"}
                )
                status = await _until_finished(client, emu, cid)
                assert status.status_code == "FINISHED"
                media_id = await client.publish(IG, TOKEN, cid)
                info = await client.media_info(media_id, TOKEN)
                limit = await client.publishing_limit(IG, TOKEN)
                assert limit.quota_usage == 1 and limit.quota_total > 0

                # a one-shot quota error, as Meta would send it
                emu.state.inject("media_publish", 9, 2207042, http_status=400)
                with pytest.raises(GraphError) as info_err:
                    await client.publish(IG, TOKEN, cid)
                return media_id, info_err.value.error_class, info

    media_id, quota_class, info = run(main())
    assert info["id"] == media_id
    assert quota_class is ErrorClass.QUOTA
    assert [m["id"] for m in emu.state.published_media(IG)] == [media_id]

    assert all((r.account, r.post_id) == ("shop", 1) for r in records)
    assert records[-1].error_code == 9 and records[-1].error_subcode == 2207042
    assert records[-1].fbtrace_id
    assert any(r.usage.buc for r in records), "usage headers are parsed from the emulator"
    logged = json.dumps(emu.state.requests, default=str)
    assert TOKEN not in logged
    assert all(TOKEN not in repr(r) for r in records)


def test_resumable_upload_and_comments_against_the_emulator(emu: Any, tmp_path: Path) -> None:
    video = tmp_path / "reel.mp4"
    video.write_bytes(b"\0" * 200_000)

    async def main() -> list[dict[str, Any]]:
        async with GraphClient(emu.base_url, VERSION, 10.0) as client:
            cid, uri = await client.start_resumable(IG, TOKEN, {"media_type": "REELS"})
            assert uri.startswith(emu.base_url)
            await client.upload_file(uri, TOKEN, video)
            assert (await _until_finished(client, emu, cid)).status_code == "FINISHED"
            media_id = await client.publish(IG, TOKEN, cid)
            for i in range(7):
                emu.state.add_comment(media_id, f"nice {i}", username=f"fan{i}")
            await client.post_comment(media_id, TOKEN, "More at the link in bio")
            return await client.comments(media_id, TOKEN, page_size=3)

    comments = run(main())
    assert len(comments) == 8
    assert len({c["id"] for c in comments}) == 8
    assert any(c.get("username") == "shop" for c in comments)


def test_dropped_publish_against_the_emulator_is_ambiguous(emu: Any) -> None:
    async def main() -> GraphUnavailable:
        async with GraphClient(emu.base_url, VERSION, 10.0) as client:
            cid = await client.create_container(
                IG, TOKEN, {"image_url": "https://cdn.example.com/b.jpg"}
            )
            await _until_finished(client, emu, cid)
            emu.state.configure(drop_after_rate=1.0, fault_endpoints=["media_publish"])
            with pytest.raises(GraphUnavailable) as info:
                await client.publish(IG, TOKEN, cid)
            return info.value

    err = run(main())
    assert (err.kind, err.error_class) == ("connection", ErrorClass.AMBIGUOUS)
    assert len(emu.state.published_media(IG)) == 1  # it did go live: hence "ambiguous"


def run(coro: Any) -> Any:
    return asyncio.run(coro)
