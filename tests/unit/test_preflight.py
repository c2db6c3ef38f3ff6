"""Media preflight against a real HTTP server on 127.0.0.1 (no internet): rules the media breaks
are errors; what cannot be checked from here is a warning."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import re
import socket
import stat
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from PIL import Image

from scheduler.models import MediaItem, PostSpec
from scheduler.pipeline.preflight import (
    FFPROBE_MISSING,
    PreflightResult,
    check_all,
    check_media,
    media_targets,
)

MiB = 1024 * 1024


def jpeg(width: int, height: int, **save: object) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (200, 120, 40)).save(buf, "JPEG", **save)
    return buf.getvalue()


def png(width: int, height: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height)).save(buf, "PNG")
    return buf.getvalue()


@dataclass
class Route:
    body: bytes
    content_type: str | None = "image/jpeg"
    status: int = 200
    head_allowed: bool = True
    ranges: bool = True
    total: int | None = None  # claimed full size (lets a small body pose as a big file)
    location: str | None = None  # answer `status` (a 3xx) with this Location


class Server:
    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[tuple[str, str, str | None]] = []  # method, path, Range header

    def url(self, path: str) -> str:
        return f"{self.base}{path}"

    base = ""


def _handler(server: Server) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_HEAD(self) -> None:
            self._serve(head=True)

        def do_GET(self) -> None:
            self._serve(head=False)

        def _serve(self, head: bool) -> None:
            server.requests.append((self.command, self.path, self.headers.get("Range")))
            route = server.routes.get(self.path)
            if route is None:
                return self._plain(404)
            if route.location:
                self.send_response(route.status)
                self.send_header("Location", route.location)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return None
            if head and not route.head_allowed:
                return self._plain(405)
            if route.status != 200:
                return self._plain(route.status)
            body, total = route.body, route.total or len(route.body)
            wanted = re.match(r"bytes=(\d+)-(\d+)", self.headers.get("Range") or "")
            if wanted and route.ranges and not head:
                start, end = int(wanted[1]), min(int(wanted[2]), len(body) - 1)
                body = body[start : end + 1]
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{end}/{total}")
                self.send_header("Content-Length", str(len(body)))
            else:
                self.send_response(200)
                self.send_header("Content-Length", str(total if head else len(body)))
            if route.content_type:
                self.send_header("Content-Type", route.content_type)
            self.end_headers()
            if not head:
                # the client may read the header and hang up: that is the point
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(body)

        def _plain(self, status: int) -> None:
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    return Handler


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    state = Server()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    httpd.daemon_threads = True
    state.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield state
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(autouse=True)
def no_ffprobe(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Tests decide whether ffprobe exists; by default it does not."""
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))


LOCAL = {"127.0.0.1"}  # the test server stands in for the configured emulator


def image_post(url: str) -> PostSpec:
    return PostSpec("k", "shop", "image", None, (MediaItem("image", url),))


def story(url: str, kind: str) -> PostSpec:
    return PostSpec("k", "shop", "story", None, (MediaItem(kind, url),))  # type: ignore[arg-type]


def reel(url: str, cover: str | None = None) -> PostSpec:
    return PostSpec("k", "shop", "reel", None, (MediaItem("video", url),), cover_url=cover)


def check(spec: PostSpec, timeout: float = 5.0) -> PreflightResult:
    async def run() -> PreflightResult:
        async with httpx.AsyncClient(timeout=timeout) as client:
            return await check_media(spec, client, trusted_hosts=LOCAL)

    return asyncio.run(run())


def serve(server: Server, path: str, route: Route) -> str:
    server.routes[path] = route
    return server.url(path)


# --------------------------------------------------------------------------- images


def test_good_feed_image_passes(server: Server) -> None:
    url = serve(server, "/ok.jpg", Route(jpeg(1080, 1350)))
    result = check(image_post(url))
    assert result.errors == [] and result.warnings == [] and result.ok
    assert ("GET", "/ok.jpg", "bytes=0-65535") in server.requests


@pytest.mark.parametrize(
    ("size", "message"),
    [
        (
            (1080, 500),
            "is 1080×500 px (aspect 2.16:1, too wide); a feed image must be between 4:5 (0.8:1) and 1.91:1",
        ),
        (
            (1080, 1920),
            "is 1080×1920 px (aspect 0.56:1, too tall); a feed image must be between 4:5 (0.8:1) and 1.91:1",
        ),
    ],
)
def test_aspect_ratio_out_of_range(server: Server, size: tuple[int, int], message: str) -> None:
    url = serve(server, f"/aspect{size[0]}x{size[1]}.jpg", Route(jpeg(*size)))
    assert check(image_post(url)).errors == [f"image {url} {message}"]


def test_aspect_ratio_limits_are_inclusive(server: Server) -> None:
    for w, h in ((1080, 1350), (1910, 1000)):
        url = serve(server, f"/edge{w}.jpg", Route(jpeg(w, h)))
        assert check(image_post(url)).errors == []


def test_exif_rotation_counts(server: Server) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # shown rotated 90°: 1920×1080 stored, 1080×1920 displayed
    url = serve(server, "/rotated.jpg", Route(jpeg(1920, 1080, exif=exif)))
    (error,) = check(image_post(url)).errors
    assert "1080×1920 px" in error and "too tall" in error


def test_story_image_has_no_aspect_rule(server: Server) -> None:
    url = serve(server, "/story.jpg", Route(jpeg(1080, 1920)))
    assert check(story(url, "image")) == PreflightResult()


def test_width_outside_range_is_only_a_warning(server: Server) -> None:
    url = serve(server, "/small.jpg", Route(jpeg(200, 200)))
    result = check(image_post(url))
    assert result.errors == []
    assert result.warnings == [f"image {url} is 200 px wide; Instagram scales it to 320–1440 px"]


def test_png_served_as_png_is_an_error(server: Server) -> None:
    url = serve(server, "/pic.png", Route(png(1080, 1080), "image/png"))
    assert check(image_post(url)).errors == [
        f"image {url} is served as image/png; a feed image must be image/jpeg"
    ]


def test_png_bytes_behind_a_jpeg_content_type(server: Server) -> None:
    url = serve(server, "/liar.jpg", Route(png(1080, 1080), "image/jpeg"))
    assert check(image_post(url)).errors == [
        f"image {url} is a PNG image; Instagram accepts only JPEG"
    ]


def test_html_page_instead_of_image(server: Server) -> None:
    url = serve(
        server, "/login.jpg", Route(b"<html>please log in</html>", "text/html; charset=utf-8")
    )
    assert check(image_post(url)).errors == [
        f"image {url} is served as text/html; a feed image must be image/jpeg"
    ]


def test_garbage_with_jpeg_content_type(server: Server) -> None:
    url = serve(server, "/garbage.jpg", Route(b"\x00" * 5000))
    (error,) = check(image_post(url)).errors
    assert (
        error == f"image {url} is not a JPEG image (its content is not an image Instagram accepts)"
    )


def test_octet_stream_is_a_warning_and_bytes_still_checked(server: Server) -> None:
    url = serve(server, "/blob", Route(jpeg(1080, 1080), "application/octet-stream"))
    result = check(image_post(url))
    assert result.errors == []
    assert result.warnings == [
        f"image {url} is served without a specific content type (application/octet-stream); "
        "Meta may refuse it: serve it as image/jpeg"
    ]


def test_mpo_is_refused(server: Server) -> None:
    buf = io.BytesIO()
    first, second = Image.new("RGB", (1080, 1080)), Image.new("RGB", (1080, 1080), (9, 9, 9))
    first.save(buf, "MPO", save_all=True, append_images=[second])
    url = serve(server, "/stereo.jpg", Route(buf.getvalue()))
    assert check(image_post(url)).errors == [
        f"image {url} is a multi-picture JPEG (MPO); Instagram accepts only plain JPEG"
    ]


def test_oversized_image(server: Server) -> None:
    url = serve(server, "/huge.jpg", Route(jpeg(1080, 1080), total=9 * MiB + 100))
    assert check(image_post(url)).errors == [
        f"image {url} is 9.0 MB; the limit for a feed image is 8 MB"
    ]


def test_server_ignoring_range_is_read_only_in_part(server: Server) -> None:
    noise = Image.frombytes("RGB", (1400, 1400), bytes(range(256)) * (1400 * 1400 * 3 // 256 + 1))
    buf = io.BytesIO()
    noise.save(buf, "JPEG", quality=100)
    assert len(buf.getvalue()) > 4 * 65536
    url = serve(server, "/norange.jpg", Route(buf.getvalue(), ranges=False))
    assert check(image_post(url)) == PreflightResult()


def test_header_beyond_64k_is_a_warning(server: Server) -> None:
    url = serve(server, "/bigheader.jpg", Route(jpeg(1080, 1080, icc_profile=b"\0" * 200_000)))
    result = check(image_post(url))
    assert result.errors == []
    assert result.warnings == [
        f"image {url} is a JPEG whose dimensions could not be read from its first 64 KiB"
    ]


def test_not_found_is_an_error(server: Server) -> None:
    url = server.url("/missing.jpg")
    assert check(image_post(url)).errors == [
        f"image {url} is not there (HTTP 404); Meta cannot fetch it either"
    ]


def test_forbidden_is_only_a_warning(server: Server) -> None:
    url = serve(server, "/private.jpg", Route(b"", status=403))
    result = check(image_post(url))
    assert result.errors == []
    assert result.warnings == [
        f"image {url} answered HTTP 403 here; Meta fetches it from elsewhere and may get a different answer"
    ]


def test_closed_port_is_only_a_warning() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/a.jpg"
    result = check(image_post(url))
    assert result.errors == []
    (warning,) = result.warnings
    assert warning.startswith(f"image {url} could not be reached from this host (")
    assert warning.endswith("Meta fetches it from elsewhere, so staging goes ahead")


def test_silent_server_times_out_as_a_warning() -> None:
    with socket.socket() as s:  # accepts connections (backlog) but never answers
        s.bind(("127.0.0.1", 0))
        s.listen(5)
        url = f"http://127.0.0.1:{s.getsockname()[1]}/a.jpg"
        result = check(image_post(url), timeout=0.5)
    assert result.errors == []
    assert result.warnings == [
        f"image {url} could not be reached from this host (timed out); Meta fetches it from "
        "elsewhere, so staging goes ahead"
    ]


def test_carousel_messages_name_the_item(server: Server) -> None:
    good = serve(server, "/c0.jpg", Route(jpeg(1080, 1080)))
    wide = serve(server, "/c1.jpg", Route(jpeg(2000, 500)))
    video = serve(server, "/c2.mp4", Route(b"\0" * 100, "video/mp4"))
    spec = PostSpec(
        "k", "shop", "carousel", None,
        (MediaItem("image", good), MediaItem("image", wide), MediaItem("video", video),
         MediaItem("image", server.url("/gone.jpg"))),
    )  # fmt: skip
    result = check(spec)
    assert [e.split(" ")[0] for e in result.errors] == ["carousel[1]", "carousel[3]"]
    assert result.warnings == [
        f"carousel[1] {wide} is 2000 px wide; Instagram scales it to 320–1440 px",
        FFPROBE_MISSING,
    ]


# --------------------------------------------------------------------------- videos


def test_reel_head_check_and_ffprobe_missing(server: Server) -> None:
    url = serve(server, "/reel.mp4", Route(b"\0" * 1000, "video/mp4", total=50 * MiB))
    server.requests.clear()
    result = check(reel(url))
    assert result.errors == []
    assert result.warnings == [FFPROBE_MISSING]
    assert server.requests == [("HEAD", "/reel.mp4", None)]


def test_reel_too_big(server: Server) -> None:
    url = serve(server, "/big.mov", Route(b"\0" * 10, "video/quicktime", total=301 * MiB))
    assert check(reel(url)).errors == [f"reel {url} is 301 MB; the limit for a reel is 300 MB"]


def test_story_video_limit_is_lower(server: Server) -> None:
    url = serve(server, "/story.mp4", Route(b"\0" * 10, "video/mp4", total=150 * MiB))
    assert check(story(url, "video")).errors == [
        f"story {url} is 150 MB; the limit for a story video is 100 MB"
    ]
    assert check(reel(url)).errors == []


def test_head_refused_falls_back_to_ranged_get(server: Server) -> None:
    url = serve(
        server,
        "/nohead.mp4",
        Route(b"\0" * 100_000, "video/mp4", head_allowed=False, total=400 * MiB),
    )
    server.requests.clear()
    assert check(reel(url)).errors == [f"reel {url} is 400 MB; the limit for a reel is 300 MB"]
    assert server.requests == [
        ("HEAD", "/nohead.mp4", None),
        ("GET", "/nohead.mp4", "bytes=0-65535"),
    ]


def test_video_with_wrong_content_type(server: Server) -> None:
    url = serve(server, "/clip.mp4", Route(b"<html></html>", "text/html"))
    assert check(reel(url)).errors == [
        f"reel {url} is served as text/html; a reel must be video/mp4 or video/quicktime"
    ]


def test_reel_cover_is_checked(server: Server) -> None:
    video = serve(server, "/withcover.mp4", Route(b"\0", "video/mp4"))
    cover = serve(server, "/cover.png", Route(png(1080, 1920), "image/png"))
    assert check(reel(video, cover)).errors == [
        f"cover {cover} is served as image/png; a reel cover must be image/jpeg"
    ]
    assert [t.label for t in media_targets(reel(video, cover))] == ["reel", "cover"]


def test_local_video_sizes(tmp_path: Path) -> None:
    path = tmp_path / "long.mp4"
    with path.open("wb") as f:
        f.truncate(101 * MiB)  # sparse: costs no disk
    assert check(story(str(path), "video")).errors == [
        f"story {path} is 101 MB; the limit for a story video is 100 MB"
    ]
    assert check(reel(str(path))).errors == []
    assert check(reel(str(tmp_path / "gone.mp4"))).errors == [
        f"reel {tmp_path / 'gone.mp4'} cannot be read: No such file or directory"
    ]


def fake_ffprobe(bin_dir: Path, answer: dict[str, object] | None, exit_code: int = 0) -> None:
    out = bin_dir / "answer.json"
    out.write_text(json.dumps(answer or {}))
    script = bin_dir / "ffprobe"
    script.write_text(
        f"#!/bin/sh\n/bin/cat {out}\necho 'Invalid data found' >&2\nexit {exit_code}\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)


@pytest.mark.parametrize(
    ("codec", "duration", "errors"),
    [
        ("h264", "20.5", []),
        ("hevc", "899.0", []),
        ("vp9", "20.5", ["uses the vp9 video codec; Instagram needs H.264 or HEVC"]),
        ("h264", "2.0", ["is 2.0 s long; a reel must be 3 s to 15 min"]),
        ("h264", "901.0", ["is 901.0 s long; a reel must be 3 s to 15 min"]),
    ],
)
def test_ffprobe_duration_and_codec(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, codec: str, duration: str, errors: list[str]
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    fake_ffprobe(
        bin_dir,
        {
            "streams": [
                {"codec_type": "audio", "codec_name": "aac"},
                {"codec_type": "video", "codec_name": codec},
            ],
            "format": {"duration": duration},
        },
    )
    video = tmp_path / "v.mp4"
    video.write_bytes(b"\0" * 10)
    result = check(reel(str(video)))
    assert result.errors == [f"reel {video} {e}" for e in errors]
    assert result.warnings == []


def test_ffprobe_story_duration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, server: Server
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    fake_ffprobe(
        bin_dir,
        {"streams": [{"codec_type": "video", "codec_name": "h264"}], "format": {"duration": "75"}},
    )
    url = serve(server, "/long-story.mp4", Route(b"\0", "video/mp4"))
    assert check(story(url, "video")).errors == [
        f"story {url} is 75.0 s long; a story video must be 3 s to 60 s"
    ]


def test_ffprobe_failure_local_is_error_remote_is_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, server: Server
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    fake_ffprobe(bin_dir, None, exit_code=1)
    video = tmp_path / "broken.mp4"
    video.write_bytes(b"\0")
    assert check(reel(str(video))).errors == [
        f"reel {video} could not be read as a video by ffprobe: Invalid data found"
    ]
    url = serve(server, "/unprobed.mp4", Route(b"\0", "video/mp4"))
    result = check(reel(url))
    assert result.errors == []
    assert result.warnings == [
        f"reel {url} could not be read as a video by ffprobe: Invalid data found"
    ]


def test_sync_helper_checks_several_posts(server: Server) -> None:
    good = image_post(serve(server, "/sync-ok.jpg", Route(jpeg(1080, 1080))))
    gone = image_post(server.url("/sync-missing.jpg"))
    results = check_all([good, gone], timeout_s=5, trusted_hosts=LOCAL)
    assert [(spec, r.ok) for spec, r in results] == [(good, True), (gone, False)]


# --------------------------------------------------------------------------- addresses


def _check_untrusted(spec: PostSpec) -> PreflightResult:
    async def run() -> PreflightResult:
        async with httpx.AsyncClient(timeout=5) as client:
            return await check_media(spec, client)

    return asyncio.run(run())


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("https://169.254.169.254/latest/meta-data/a.jpg", "link-local"),
        ("http://127.0.0.1:9/a.jpg", "loopback"),
        ("https://10.1.2.3/a.jpg", "private"),
        ("https://[::1]/a.jpg", "loopback"),
        ("https://localhost/a.jpg", "loopback"),
        ("https://0.0.0.0/a.jpg", "private"),
        ("https://100.64.0.1/a.jpg", "non-public"),  # carrier-grade NAT
    ],
)
def test_media_on_this_hosts_own_network_is_not_fetched(url: str, kind: str) -> None:
    result = _check_untrusted(image_post(url))
    (error,) = result.errors
    assert f"a {kind} address: the media check does not fetch from this host's own network" in error
    assert result.warnings == []


def test_untrusted_loopback_server_gets_no_request(server: Server) -> None:
    url = serve(server, "/untrusted.jpg", Route(jpeg(1080, 1080)))
    before = len(server.requests)
    result = _check_untrusted(image_post(url))
    assert "loopback address" in result.errors[0]
    assert len(server.requests) == before


@pytest.mark.parametrize("kind", ["image", "video"])
def test_a_redirect_to_a_private_address_is_not_followed(server: Server, kind: str) -> None:
    target = "http://169.254.169.254/latest/meta-data/iam"
    url = serve(server, f"/redirect.{'jpg' if kind == 'image' else 'mp4'}", Route(b"", status=302, location=target))
    spec = image_post(url) if kind == "image" else reel(url)
    (error,) = check(spec).errors
    assert "leads to 169.254.169.254, a link-local address" in error


def test_trusted_media_hosts_is_the_graph_api_host() -> None:
    from scheduler.pipeline.preflight import trusted_media_hosts

    assert trusted_media_hosts("http://127.0.0.1:8790") == {"127.0.0.1"}
    assert trusted_media_hosts("https://Graph.Facebook.com") == {"graph.facebook.com"}
