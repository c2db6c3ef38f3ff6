"""Queue-file media sources → URLs Meta can fetch, or readable local video files (README "Queue files").

Images come only as https URLs (Meta fetches them itself); videos may also be local files,
returned as absolute paths. A file's extension must fit the kind of media it is given as.
"""

from __future__ import annotations

import os
import re
from pathlib import Path, PurePosixPath
from urllib.parse import quote, urlsplit

from scheduler.models import MediaKind
from scheduler.queuefile.fields import Ctx, leaf, unknown_keys
from scheduler.queuefile.times import type_name

IMAGE_EXTS = frozenset({".jpg", ".jpeg"})
VIDEO_EXTS = frozenset({".mp4", ".mov"})
_OTHER_IMAGE_EXTS = frozenset(
    {".png", ".gif", ".webp", ".heic", ".heif", ".bmp", ".tif", ".tiff", ".avif"}
)
_OTHER_VIDEO_EXTS = frozenset({".avi", ".mkv", ".webm", ".wmv", ".flv", ".3gp", ".mpg", ".mpeg"})

_SCHEME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_LOCAL_HTTP_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


def _extension(source: str) -> str:
    path = urlsplit(source).path if _SCHEME_RE.match(source) else source
    return PurePosixPath(path).suffix.lower()


def _url_problem(url: str) -> str | None:
    """Why Meta could not fetch this URL, or None. The local emulator's http URLs pass."""
    odd = [c for c in dict.fromkeys(url) if not c.isascii()]
    if odd:
        example = f"{odd[0]} → {quote(odd[0])}"
        return (
            f"contains characters Meta cannot fetch ({' '.join(odd)}); URLs must be plain "
            f"ASCII: percent-encode them ({example}) or rename the file"
        )
    if any(c.isspace() for c in url):
        return "contains spaces; write them as %20"
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError as e:
        return f"is not a valid URL ({e})"
    scheme = parts.scheme.lower()
    if scheme == "http" and host in _LOCAL_HTTP_HOSTS:
        return None
    if scheme == "http":
        return (
            "is an http:// URL; Meta fetches media only over https:// "
            "(plain http works only for localhost, for the emulator)"
        )
    if scheme != "https":
        return f"must be an https:// URL, not {scheme}://"
    if not host:
        return "has no host name"
    return None


def _extension_problem(source: str, kind: MediaKind) -> str | None:
    ext = _extension(source)
    if kind == "image":
        if ext in VIDEO_EXTS or ext in _OTHER_VIDEO_EXTS:
            return f"looks like a video ({ext}); this must be a JPEG image (.jpg/.jpeg)"
        if ext in _OTHER_IMAGE_EXTS:
            return f"is a {ext} file; Instagram accepts only JPEG images (.jpg/.jpeg)"
    else:
        if ext in IMAGE_EXTS or ext in _OTHER_IMAGE_EXTS:
            return f"looks like an image ({ext}); this must be an MP4 or MOV video"
        if ext in _OTHER_VIDEO_EXTS:
            return f"is a {ext} file; Instagram accepts only MP4 or MOV videos"
    return None


def _local_file(ctx: Ctx, path: str, written: str, base_dir: Path) -> str | None:
    p = Path(written).expanduser()
    relative = not p.is_absolute()
    p = Path(os.path.abspath(base_dir / p))
    where = " (relative paths are read from the queue file's folder)" if relative else ""
    if not p.exists():
        ctx.add(path, f"local file {p} does not exist{where}")
    elif p.is_dir():
        ctx.add(path, f"{p} is a folder, not a video file")
    elif not p.is_file():
        ctx.add(path, f"{p} is not a regular file")
    else:
        try:
            with p.open("rb"):
                pass
        except OSError as e:
            ctx.add(path, f"local file {p} cannot be read: {e.strerror}")
        else:
            return str(p)
    return None


def media_source(
    ctx: Ctx, path: str, value: object, kind: MediaKind, base_dir: Path, *, local_ok: bool = True
) -> str | None:
    """An https URL (or, for video, a readable local file → absolute path)."""
    name = leaf(path)
    local_ok = local_ok and kind == "video"
    wanted = "an https URL" + (" or a local file path" if local_ok else "")
    if value is None or value == "":
        ctx.add(path, f"{name} is empty; give {wanted}")
        return None
    if not isinstance(value, str):
        ctx.add(path, f"{name} must be {wanted}, got {type_name(value)}")
        return None
    written = value.strip()
    if _SCHEME_RE.match(written):
        problem = _url_problem(written)
        source = None if problem else written
        if problem:
            ctx.add(path, f"{name} {written} {problem}")
    elif not local_ok:
        why = "images" if kind == "image" else "this field"
        ctx.add(
            path,
            f"{name} '{written}' is not a URL; {why} must be given as an https:// URL "
            "(Meta fetches them itself; only videos can be uploaded from a local file)",
        )
        return None
    else:
        source = _local_file(ctx, path, written, base_dir)
    ext_problem = _extension_problem(written, kind)
    if ext_problem:
        ctx.add(path, f"{name} {written} {ext_problem}")
        return None
    return source


def typed_source(
    ctx: Ctx, path: str, value: object, base_dir: Path, extra_keys: tuple[str, ...]
) -> tuple[MediaKind | None, str | None]:
    """A story or carousel item: bare URL/path typed by extension, or {image:}/{video:}."""
    if isinstance(value, str):
        ext = _extension(value.strip())
        kind: MediaKind
        if ext in IMAGE_EXTS:
            kind = "image"
        elif ext in VIDEO_EXTS:
            kind = "video"
        else:
            ctx.add(
                path,
                f"cannot tell whether {value} is an image or a video from its extension "
                f"({ext or 'none'}): .jpg/.jpeg is an image, .mp4/.mov a video; "
                "otherwise write {image: URL} or {video: URL}",
            )
            return None, None
        return kind, media_source(ctx, path, value, kind, base_dir)
    if isinstance(value, dict):
        unknown_keys(ctx, path, value, ("image", "video", *extra_keys))
        kinds: list[MediaKind] = [k for k in ("image", "video") if k in value]
        if len(kinds) != 1:
            ctx.add(
                path,
                f"give exactly one of image or video here, e.g. {{video: URL}} (found {len(kinds)})",
            )
            return None, None
        kind = kinds[0]
        return kind, media_source(ctx, f"{path}.{kind}", value[kind], kind, base_dir)
    ctx.add(
        path,
        f"{leaf(path)} must be a URL, a file path, {{image: URL}} or {{video: URL}}, "
        f"got {type_name(value)}",
    )
    return None, None
