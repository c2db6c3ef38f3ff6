"""Media preflight, the first step of every post: fetch just enough of each media file to
catch what Meta would refuse, long before the post's time.

Errors are rules the media breaks (the post cannot succeed: it fails now). Warnings are what
could not be checked from this host: Meta fetches the media from elsewhere, so an unreachable
URL here is not proof of anything and staging goes ahead. Limits: README "Post kinds, fields
and how they reach Instagram". The same checks run on demand with `igsched validate --fetch`
(check_all); the pipeline step is `check`.
"""

from __future__ import annotations

import asyncio
import errno
import io
import ipaddress
import json
import os
import shutil
import socket
import stat
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpx
from PIL import Image, UnidentifiedImageError

from scheduler.lifecycle import PostMove, stage_at
from scheduler.models import MediaItem, MediaKind, PostSpec
from scheduler.pipeline.outcomes import fail, transition, update
from scheduler.pipeline.runtime import Runtime
from scheduler.store import PostRecord
from scheduler.tls import tls_context

MiB = 1024 * 1024
HEADER_BYTES = 64 * 1024  # enough for a JPEG's header (SOF and EXIF) in practice
FFPROBE_TIMEOUT_S = 60.0
FFPROBE_MISSING = "video duration/codec not checked: ffprobe not found"

JPEG_TYPES = ("image/jpeg", "image/jpg", "image/pjpeg")  # the last two: common misspellings
VIDEO_TYPES = ("video/mp4", "video/quicktime")
VIDEO_CODECS = ("h264", "hevc")
_UNSPECIFIC_TYPES = ("application/octet-stream", "binary/octet-stream")
_EXIF_ORIENTATION = 0x0112


@dataclass(frozen=True)
class MediaRule:
    """What one role of media must satisfy. Sizes count MiB (Meta's error 36000 says "8 MiB"):
    the lenient reading of "MB", so nothing Meta accepts is refused here."""

    what: str  # in words, for messages
    content_types: tuple[str, ...]
    max_bytes: int
    aspect: tuple[Fraction, Fraction] | None = None  # width/height, inclusive
    width_ok: tuple[int, int] | None = None  # outside: a warning (Meta scales)
    duration_s: tuple[float, float] | None = None


FEED_IMAGE = MediaRule(
    "a feed image", JPEG_TYPES, 8 * MiB, (Fraction(4, 5), Fraction(191, 100)), (320, 1440)
)
STORY_IMAGE = MediaRule("a story image", JPEG_TYPES, 8 * MiB)
COVER = MediaRule("a reel cover", JPEG_TYPES, 8 * MiB)
REEL = MediaRule("a reel", VIDEO_TYPES, 300 * MiB, duration_s=(3, 15 * 60))
STORY_VIDEO = MediaRule("a story video", VIDEO_TYPES, 100 * MiB, duration_s=(3, 60))
# Meta documents no separate carousel-video limits; the reel limits are the widest
# Meta documents, so nothing Meta would accept is refused here.
CAROUSEL_VIDEO = MediaRule("a carousel video", VIDEO_TYPES, 300 * MiB, duration_s=(3, 15 * 60))


@dataclass
class PreflightResult:
    errors: list[str] = field(default_factory=list)  # the post cannot succeed
    warnings: list[str] = field(default_factory=list)  # could not check; staging goes ahead

    @property
    def ok(self) -> bool:
        return not self.errors

    def extend(self, other: PreflightResult) -> None:
        self.errors += other.errors
        self.warnings += other.warnings


@dataclass(frozen=True)
class Target:
    """One thing to fetch: a post's media item or a reel's cover."""

    label: str  # the queue-file field: "image", "reel", "cover", "story", "carousel[2]"
    source: str  # URL or absolute local path
    kind: MediaKind
    rule: MediaRule

    @property
    def is_local(self) -> bool:
        return not self.source.startswith(("http://", "https://"))


def media_targets(spec: PostSpec) -> list[Target]:
    """Every media file a post needs, with the rule that applies to it."""
    if spec.kind == "carousel":
        return [
            Target(f"carousel[{i}]", m.source, m.kind, _carousel_rule(m))
            for i, m in enumerate(spec.media)
        ]
    item = spec.media[0]
    if spec.kind == "image":
        return [Target("image", item.source, "image", FEED_IMAGE)]
    if spec.kind == "story":
        rule = STORY_IMAGE if item.kind == "image" else STORY_VIDEO
        return [Target("story", item.source, item.kind, rule)]
    targets = [Target("reel", item.source, "video", REEL)]
    if spec.cover_url:
        targets.append(Target("cover", spec.cover_url, "image", COVER))
    return targets


def _carousel_rule(m: MediaItem) -> MediaRule:
    return FEED_IMAGE if m.kind == "image" else CAROUSEL_VIDEO


async def check_media(
    spec: PostSpec, client: httpx.AsyncClient, *, trusted_hosts: Collection[str] = ()
) -> PreflightResult:
    """Check every media file of `spec` (concurrently); never raises for network trouble.

    Nothing is fetched from a loopback, private, link-local or otherwise non-public address
    (a queue file must not make this host read its own network, e.g. a cloud metadata
    service), except from `trusted_hosts`: the configured Graph API host, which is the
    emulator when it serves the media itself (see trusted_media_hosts)."""
    targets = media_targets(spec)
    ffprobe = shutil.which("ffprobe")
    trusted = frozenset(h.lower() for h in trusted_hosts)
    result = PreflightResult()
    for one in await asyncio.gather(*(_check_target(t, client, ffprobe, trusted) for t in targets)):
        result.extend(one)
    if ffprobe is None and any(t.kind == "video" for t in targets):
        result.warnings.append(FFPROBE_MISSING)
    return result


def trusted_media_hosts(graph_base_url: str) -> frozenset[str]:
    """The one host whose media may be on a private address: the configured Graph API's
    (the emulator serves made-up media; Meta's hosts are public anyway)."""
    host = urlsplit(graph_base_url).hostname
    return frozenset({host.lower()}) if host else frozenset()


def check_all(
    specs: Sequence[PostSpec], *, timeout_s: float = 20.0, trusted_hosts: Collection[str] = ()
) -> list[tuple[PostSpec, PreflightResult]]:
    """For the CLI (`validate --fetch`): check several posts with one client, synchronously."""

    async def run() -> list[PreflightResult]:
        headers = {"User-Agent": "igsched-preflight"}
        async with httpx.AsyncClient(timeout=timeout_s, headers=headers, verify=tls_context()) as client:
            return list(await asyncio.gather(
                *(check_media(s, client, trusted_hosts=trusted_hosts) for s in specs)))

    return list(zip(specs, asyncio.run(run()), strict=True))


# --------------------------------------------------------------------------- one target


class _Notes:
    """Collects messages for one target, each naming the field and the file."""

    def __init__(self, target: Target) -> None:
        shown = target.source if len(target.source) <= 100 else target.source[:97] + "…"
        self.prefix = f"{target.label} {shown}"
        self.result = PreflightResult()

    def error(self, message: str) -> None:
        self.result.errors.append(f"{self.prefix} {message}")

    def warn(self, message: str) -> None:
        self.result.warnings.append(f"{self.prefix} {message}")


async def _check_target(
    t: Target, client: httpx.AsyncClient, ffprobe: str | None, trusted: frozenset[str]
) -> PreflightResult:
    notes = _Notes(t)
    if t.is_local:
        readable = _check_local(t, notes)
    else:
        readable = await _check_remote(t, client, notes, trusted)
    # ffprobe only for media that was there and broke no rule so far (it may download a lot)
    if t.kind == "video" and ffprobe and readable and notes.result.ok:
        await _probe_video(t, ffprobe, notes)
    return notes.result


def _check_local(t: Target, notes: _Notes) -> bool:
    # the file was checked at enqueue; it may have been swapped for a symlink since
    try:
        fd = os.open(Path(t.source), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        with os.fdopen(fd, "rb") as f:
            st = os.fstat(f.fileno())
            if not stat.S_ISREG(st.st_mode):
                notes.error("is not a regular file")
                return False
            size = st.st_size
            head = f.read(HEADER_BYTES) if t.kind == "image" else b""
    except OSError as e:
        notes.error("is a symbolic link" if e.errno == errno.ELOOP else f"cannot be read: {e.strerror}")
        return False
    _check_size(t, size, notes)
    if t.kind == "image":
        _check_image(t, head, notes)
    return True


@dataclass(frozen=True)
class _Answer:
    status: int
    content_type: str | None
    size: int | None
    head: bytes  # the first bytes (ranged GET only)


async def _check_remote(
    t: Target, client: httpx.AsyncClient, notes: _Notes, trusted: frozenset[str]
) -> bool:
    """True when the URL answered with the media (so deeper checks make sense)."""
    try:
        answer = await _fetch(t, client, trusted)
    except _Refused as e:
        notes.error(str(e))
        return False
    except httpx.TimeoutException:
        notes.warn(_unreachable("timed out"))
        return False
    except httpx.InvalidURL as e:
        notes.error(f"is not a valid URL: {e}")
        return False
    except httpx.HTTPError as e:  # DNS, refused, reset, TLS, too many redirects, …
        notes.warn(_unreachable(str(e) or type(e).__name__))
        return False
    if answer.status in (404, 410):
        notes.error(f"is not there (HTTP {answer.status}); Meta cannot fetch it either")
        return False
    if answer.status not in (200, 206):
        notes.warn(
            f"answered HTTP {answer.status} here; Meta fetches it from elsewhere and may "
            "get a different answer"
        )
        return False
    type_ok = _check_content_type(t, answer.content_type, notes)
    if answer.size is not None:
        _check_size(t, answer.size, notes)
    if t.kind == "image" and type_ok:
        _check_image(t, answer.head, notes)
    return True


def _unreachable(why: str) -> str:
    return (
        f"could not be reached from this host ({why}); Meta fetches it from elsewhere, "
        "so staging goes ahead"
    )


MAX_REDIRECTS = 5


class _Refused(Exception):
    """A URL (or a redirect) that leads to an address the media check does not fetch from."""


async def _address_problem(url: str, trusted: frozenset[str]) -> str | None:
    """Why `url` must not be fetched from this host, or None. Every address its host
    resolves to must be public; a name that does not resolve is left to the fetch (which
    then warns that it could not be reached)."""
    host = (urlsplit(url).hostname or "").lower()
    if not host or host in trusted:
        return None
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError):
            return None
        addresses = [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]
    for ip in addresses:
        if not ip.is_global or ip.is_multicast:
            kind = ("loopback" if ip.is_loopback else "link-local" if ip.is_link_local
                    else "private" if ip.is_private else "non-public")
            return (f"leads to {ip}, a {kind} address: the media check does not fetch from "
                    "this host's own network, and Meta cannot fetch from it")
    return None


def _redirect_target(r: httpx.Response) -> str | None:
    location = r.headers.get("location")
    return urljoin(str(r.url), location) if r.is_redirect and location else None


async def _fetch(t: Target, client: httpx.AsyncClient, trusted: frozenset[str]) -> _Answer:
    # Images need their first bytes anyway, so they go straight to a ranged GET.
    if t.kind == "video":
        r = await _head(client, t.source, trusted)
        if r.status_code == 200:
            return _Answer(200, _content_type(r), _int(r.headers.get("content-length")), b"")
        # Refused (405/501) or treated differently (signed URLs answer HEAD with 403): ask by GET.
    return await _ranged_get(client, t.source, trusted)


_IDENTITY = {"Accept-Encoding": "identity"}  # so Content-Length is the file's own size


async def _head(client: httpx.AsyncClient, url: str, trusted: frozenset[str]) -> httpx.Response:
    # redirects are followed here, one at a time, so that every hop's address is checked
    for _ in range(MAX_REDIRECTS + 1):
        problem = await _address_problem(url, trusted)
        if problem:
            raise _Refused(problem)
        r = await client.head(url, follow_redirects=False, headers=_IDENTITY)
        nxt = _redirect_target(r)
        if nxt is None:
            return r
        url = nxt
    raise httpx.TooManyRedirects(f"more than {MAX_REDIRECTS} redirects")


async def _ranged_get(client: httpx.AsyncClient, url: str, trusted: frozenset[str]) -> _Answer:
    headers = {**_IDENTITY, "Range": f"bytes=0-{HEADER_BYTES - 1}"}
    for _ in range(MAX_REDIRECTS + 1):
        problem = await _address_problem(url, trusted)
        if problem:
            raise _Refused(problem)
        async with client.stream("GET", url, headers=headers, follow_redirects=False) as r:
            nxt = _redirect_target(r)
            if nxt is not None:
                url = nxt
                continue
            head = bytearray()
            if r.status_code in (200, 206):
                # A server that ignores Range sends everything: read the start, then hang up.
                async for chunk in r.aiter_bytes():
                    head += chunk
                    if len(head) >= HEADER_BYTES:
                        break
            return _Answer(r.status_code, _content_type(r), _total_size(r), bytes(head[:HEADER_BYTES]))
    raise httpx.TooManyRedirects(f"more than {MAX_REDIRECTS} redirects")


def _content_type(r: httpx.Response) -> str | None:
    value = r.headers.get("content-type")
    return (value.split(";")[0].strip().lower() or None) if value else None


def _int(value: str | None) -> int | None:
    return int(value) if value and value.strip().isdigit() else None


def _total_size(r: httpx.Response) -> int | None:
    if r.status_code == 206:  # Content-Range: bytes 0-65535/1234567
        total = r.headers.get("content-range", "").rpartition("/")[2]
        return _int(total)
    return _int(r.headers.get("content-length"))


def _check_content_type(t: Target, content_type: str | None, notes: _Notes) -> bool:
    """False when the type is clearly wrong (and the bytes are not worth reading)."""
    wanted = JPEG_TYPES[0] if t.kind == "image" else " or ".join(VIDEO_TYPES)
    if content_type in t.rule.content_types:
        return True
    if content_type is None or content_type in _UNSPECIFIC_TYPES:
        notes.warn(
            f"is served without a specific content type ({content_type or 'none'}); "
            f"Meta may refuse it: serve it as {wanted}"
        )
        return True
    notes.error(f"is served as {content_type}; {t.rule.what} must be {wanted}")
    return False


def _mb(n: int) -> str:
    return f"{n / MiB:.1f} MB" if n % MiB else f"{n // MiB} MB"


def _check_size(t: Target, size: int, notes: _Notes) -> None:
    if size > t.rule.max_bytes:
        notes.error(f"is {_mb(size)}; the limit for {t.rule.what} is {_mb(t.rule.max_bytes)}")


def _check_image(t: Target, head: bytes, notes: _Notes) -> None:
    """Format and dimensions from the header bytes alone (Pillow reads no further)."""
    try:
        with Image.open(io.BytesIO(head)) as im:
            fmt, (width, height) = im.format, im.size
            orientation = im.getexif().get(_EXIF_ORIENTATION)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        if head.startswith(b"\xff\xd8\xff"):  # a JPEG whose header runs past what we read
            notes.warn(
                f"is a JPEG whose dimensions could not be read from its first {HEADER_BYTES // 1024} KiB"
            )
        else:
            notes.error("is not a JPEG image (its content is not an image Instagram accepts)")
        return
    if fmt == "MPO":
        notes.error("is a multi-picture JPEG (MPO); Instagram accepts only plain JPEG")
        return
    if fmt != "JPEG":
        notes.error(f"is a {fmt} image; Instagram accepts only JPEG")
        return
    if orientation in (5, 6, 7, 8):  # shown rotated by 90°: the displayed shape is swapped
        width, height = height, width
    _check_shape(t, width, height, notes)


def _check_shape(t: Target, width: int, height: int, notes: _Notes) -> None:
    if t.rule.aspect and height > 0:
        low, high = t.rule.aspect
        ratio = Fraction(width, height)
        if not low <= ratio <= high:
            shape = "too tall" if ratio < low else "too wide"
            notes.error(
                f"is {width}×{height} px (aspect {float(ratio):.2f}:1, {shape}); "
                f"{t.rule.what} must be between 4:5 (0.8:1) and 1.91:1"
            )
    if t.rule.width_ok:
        low_w, high_w = t.rule.width_ok
        if not low_w <= width <= high_w:
            notes.warn(f"is {width} px wide; Instagram scales it to {low_w}–{high_w} px")


# --------------------------------------------------------------------------- video


def _duration_words(seconds: float) -> str:
    return f"{seconds / 60:g} min" if seconds > 60 and seconds % 60 == 0 else f"{seconds:g} s"


async def _probe_video(t: Target, ffprobe: str, notes: _Notes) -> None:
    args = [ffprobe, "-v", "error", "-print_format", "json", "-show_format", "-show_streams"]
    proc = await asyncio.create_subprocess_exec(
        *args, t.source, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), FFPROBE_TIMEOUT_S)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        notes.warn(f"video not checked: ffprobe took longer than {FFPROBE_TIMEOUT_S:g} s")
        return
    if proc.returncode != 0:
        why = (err.decode(errors="replace").strip().splitlines() or ["no reason given"])[-1]
        # A local file ffprobe cannot read is broken; a URL may just be unreachable from here.
        (notes.error if t.is_local else notes.warn)(
            f"could not be read as a video by ffprobe: {why}"
        )
        return
    try:
        info = json.loads(out)
    except ValueError:
        notes.warn("video not checked: ffprobe's answer could not be read")
        return
    _judge_probe(t, info, notes)


def _judge_probe(t: Target, info: dict[str, object], notes: _Notes) -> None:
    streams = info.get("streams")
    video = [
        s for s in (streams if isinstance(streams, list) else [])
        if isinstance(s, dict) and s.get("codec_type") == "video"
    ]  # fmt: skip
    if not video:
        notes.error("has no video stream")
        return
    codec = str(video[0].get("codec_name", "unknown"))
    if codec not in VIDEO_CODECS:
        notes.error(f"uses the {codec} video codec; Instagram needs H.264 or HEVC")
    fmt = info.get("format")
    raw = fmt.get("duration") if isinstance(fmt, dict) else None
    try:
        duration = float(str(raw))
    except ValueError:
        notes.warn("video length not checked: ffprobe reported no duration")
        return
    if t.rule.duration_s:
        low, high = t.rule.duration_s
        if not low <= duration <= high:
            notes.error(
                f"is {duration:.1f} s long; {t.rule.what} must be "
                f"{_duration_words(low)} to {_duration_words(high)}"
            )


# --- the pipeline step ------------------------------------------------------------------

INSTAGRAM_LOGIN_HOST = "graph.instagram.com"


def upload_problem(spec: PostSpec, base_url: str) -> str | None:
    """A local video goes up through the resumable upload, which only the Facebook Login
    flavour of the API offers (Meta's resumable upload is a Facebook Login feature): with Instagram Login it cannot succeed."""
    local = [m.source for m in spec.media if m.is_local]
    host = (urlsplit(base_url).hostname or "").lower()
    if not local or host != INSTAGRAM_LOGIN_HOST:
        return None
    return (f"local file {local[0]} needs the resumable upload, which the API with Instagram Login "
            f"({base_url}) does not offer: use graph.base_url https://graph.facebook.com (Facebook "
            "Login), or give the video as an https URL")


async def check(rt: Runtime, post: PostRecord) -> None:
    now = rt.clock.now()
    staging_time = max(now, stage_at(post.due_at, post.kind, rt.settings.staging.lead_s))
    spec = post.post_spec()
    problem = upload_problem(spec, rt.settings.graph.base_url)
    if problem:
        await fail(rt, post, problem)
        return
    if not rt.settings.preflight.enabled:
        await update(rt, post, None, preflight="skipped", next_action_at=staging_time)
        return
    result = await check_media(spec, rt.http, trusted_hosts=trusted_media_hosts(rt.settings.graph.base_url))
    if result.errors:
        await fail(rt, post, "media check failed: " + "; ".join(result.errors))
        return
    event = "media checked" + (": " + "; ".join(result.warnings) if result.warnings else ": ok")
    await transition(rt, post, PostMove.TO_PLANNED, event, preflight="warnings" if result.warnings else "ok",
                     next_action_at=max(rt.clock.now(), staging_time))
