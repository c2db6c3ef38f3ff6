"""Staging's small rules without I/O: learning processing times from intervals, which
flavour of the API can take a local file, and the emulator's media files for preflight."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx

from scheduler.emulator import RunningEmulator
from scheduler.models import MediaItem, PostSpec
from scheduler.pipeline.preflight import upload_problem
from scheduler.pipeline.processing import observed_processing_s

T0 = datetime(2026, 12, 1, 9, 0, 0)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_processing_is_learnt_as_the_middle_of_the_interval_it_ended_in() -> None:
    # IN_PROGRESS at 17 s, FINISHED at 25 s: it ended somewhere in between
    assert observed_processing_s(T0, at(25), at(17), "IN_PROGRESS") == 21
    # FINISHED at the first check (20 s): anywhere in 0-20 s; learning 10 lets the estimate
    # come down (learning 20 could only ever keep or raise it)
    assert observed_processing_s(T0, at(20), None, None) == 10
    assert observed_processing_s(T0, at(20), at(20), "FINISHED") == 10  # not a lower bound
    assert observed_processing_s(T0, at(5), at(-3), "IN_PROGRESS") == 2.5  # clock oddities
    # a patient first check (long after the expected time) only bounds it from above
    assert observed_processing_s(T0, at(80), None, None, expected_s=20) is None
    assert observed_processing_s(T0, at(30), None, None, expected_s=20) == 15
    assert observed_processing_s(T0, at(80), at(60), "IN_PROGRESS", expected_s=20) == 70


def _spec(source: str) -> PostSpec:
    return PostSpec(key="k", account="shop", kind="reel", at=datetime(2026, 12, 1, tzinfo=UTC),
                    media=(MediaItem("video", source),))


def test_a_local_file_needs_the_facebook_login_flavour() -> None:
    local, remote = _spec("/srv/videos/clip.mp4"), _spec("https://cdn.example.com/clip.mp4")
    problem = upload_problem(local, "https://graph.instagram.com")
    assert problem is not None and "/srv/videos/clip.mp4" in problem and "graph.facebook.com" in problem
    assert upload_problem(local, "https://graph.facebook.com") is None
    assert upload_problem(local, "http://127.0.0.1:8080") is None  # the emulator does both
    assert upload_problem(remote, "https://graph.instagram.com") is None


def test_emulator_serves_media_files_for_the_media_check() -> None:
    with RunningEmulator() as emu, httpx.Client(base_url=f"{emu.base_url}/_media") as c:
        jpeg = c.get("/a.jpg", params={"emu_w": 640, "emu_h": 480})
        assert jpeg.status_code == 200 and jpeg.headers["content-type"] == "image/jpeg"
        assert jpeg.content[:3] == b"\xff\xd8\xff"
        png = c.get("/a.jpg", params={"emu_format": "png"})
        assert png.headers["content-type"] == "image/png" and png.content[:4] == b"\x89PNG"
        head = c.head("/v.mp4", params={"emu_size": 400_000_000})
        assert head.status_code == 200 and head.headers["content-length"] == "400000000"
        part = c.get("/v.mp4", headers={"Range": "bytes=0-99"})
        assert part.status_code == 206 and len(part.content) == 100
        assert part.headers["content-range"] == "bytes 0-99/65536"
        assert c.get("/gone.jpg", params={"emu_status": 404}).status_code == 404
        assert emu.state.requests == []  # not Graph calls
