"""Media files at the emulator's own URLs: `GET|HEAD /_media/<name>.<ext>`.

Meta fetches `image_url`, `video_url` and `cover_url` from the web; igsched's media check
(preflight) fetches them too, before staging. So that a queue file pointed at the emulator
exercises that check for real, the emulator serves made-up media at `/_media/...`:

| query parameter | effect (all optional) |
|---|---|
| `emu_w`, `emu_h` | image size in pixels (default 1080 × 1350, a 4:5 feed image) |
| `emu_format` | `jpeg` (default; `.png` names: `png`), `png`, `gif` — the bytes served |
| `emu_bytes` | the size of a video body (default 65,536 bytes, at most 8 MiB) |
| `emu_size` | a larger total size to claim (in `HEAD` and in `Content-Range`), without sending it |
| `emu_type` | the `Content-Type` to answer with (default from the extension / format) |
| `emu_status` | answer this HTTP status instead (e.g. 404) |

Range requests (`bytes=a-b`) are answered with 206. The processing hints `emu_processing_s`
and `emu_fail` work on these URLs as on any other (they decide what "Meta" does with them).
Not part of Graph: no usage headers, no faults, not in the request log.
"""

from __future__ import annotations

import functools
import io
import re
from pathlib import PurePosixPath

from aiohttp import web

DEFAULT_SIZE = (1080, 1350)
DEFAULT_VIDEO_BYTES = 64 * 1024
MAX_VIDEO_BYTES = 8 * 1024 * 1024  # bodies are really sent; a bigger size is only claimed
_VIDEO_TYPES = {".mp4": "video/mp4", ".m4v": "video/mp4", ".mov": "video/quicktime"}
_FORMAT_TYPES = {"jpeg": "image/jpeg", "png": "image/png", "gif": "image/gif"}
_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")


@functools.lru_cache(maxsize=64)
def image_bytes(width: int, height: int, fmt: str) -> bytes:
    from PIL import Image  # only when an image is asked for

    buf = io.BytesIO()
    Image.new("RGB", (width, height), (190, 120, 60)).save(buf, fmt.upper())
    return buf.getvalue()


def video_bytes(size: int) -> bytes:
    head = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom"  # an MP4 file type box
    return (head + b"\x00" * max(0, size - len(head)))[:size]


def _int(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise web.HTTPBadRequest(text=f"{name} must be an integer") from None
    return min(max(value, low), high)


async def serve_media(request: web.Request) -> web.StreamResponse:
    """The made-up file named in the path, shaped by the query (see the module doc)."""
    name = request.match_info["name"]
    status = _int(request, "emu_status", 200, 100, 599)
    if status != 200:
        return web.Response(status=status, text=f"emulator: answering {status} for {name}")
    suffix = PurePosixPath(name).suffix.lower()
    if suffix in _VIDEO_TYPES:
        body = video_bytes(_int(request, "emu_bytes", DEFAULT_VIDEO_BYTES, 0, MAX_VIDEO_BYTES))
        ctype = _VIDEO_TYPES[suffix]
    else:
        fmt = request.query.get("emu_format", "png" if suffix == ".png" else "jpeg").lower()
        if fmt not in _FORMAT_TYPES:
            raise web.HTTPBadRequest(text=f"emu_format must be one of {', '.join(_FORMAT_TYPES)}")
        width = _int(request, "emu_w", DEFAULT_SIZE[0], 1, 10_000)
        height = _int(request, "emu_h", DEFAULT_SIZE[1], 1, 10_000)
        body = image_bytes(width, height, fmt)
        ctype = _FORMAT_TYPES[fmt]
    ctype = request.query.get("emu_type", ctype)
    total = max(len(body), _int(request, "emu_size", len(body), 0, 2**40))
    headers = {"Accept-Ranges": "bytes", "Content-Type": ctype}
    match = _RANGE.match(request.headers.get("Range", ""))
    if match:
        start = int(match.group(1))
        end = min(int(match.group(2)) if match.group(2) else total - 1, len(body) - 1)
        if start > end:
            return web.Response(status=416, headers={"Content-Range": f"bytes */{total}"})
        headers["Content-Range"] = f"bytes {start}-{end}/{total}"
        return web.Response(status=206, body=body[start : end + 1], headers=headers)
    if total > len(body) and request.method == "HEAD":  # claim a size without sending it
        headers["Content-Length"] = str(total)
        return web.Response(status=200, headers=headers)
    return web.Response(status=200, body=body, headers=headers)


def add_media_routes(app: web.Application) -> None:
    app.router.add_get("/_media/{name:.+}", serve_media)  # HEAD included
