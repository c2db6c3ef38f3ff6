"""Queue-file media sources → URLs Meta can fetch, or readable local video files (README "Queue files").

Images come only as https URLs (Meta fetches them itself); videos may also be local files,
returned as absolute paths. A file's extension must fit the kind of media it is given as.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from urllib.parse import quote, urlsplit

from scheduler.models import MediaKind
from scheduler.queuefile.fields import Ctx, leaf, unknown_keys, unusable_char
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
    path = source
    if _SCHEME_RE.match(source):
        try:
            path = urlsplit(source).path
        except ValueError:  # e.g. https://[::1/x.jpg; _url_problem says what is wrong
            path = source.split("?", 1)[0]
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
    if any(c in "\r\n\t\v\f" for c in url):
        return "contains a line break or tab; a URL is one line"
    if any(c.isspace() for c in url):
        return "contains spaces; write them as %20"
    try:
        parts = urlsplit(url)
        host = parts.hostname
        port = parts.port  # raises for a port that is not a number from 0 to 65535
    except ValueError as e:
        return f"is not a valid URL ({e})"
    if parts.username is not None or parts.password is not None:
        return (
            "contains a user name or password; Meta cannot log in to fetch media, and a "
            "password in a queue file would be stored and shown: make the file public (or a "
            "signed URL) instead"
        )
    if port == 0:
        return "has port 0, which cannot be fetched"
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


# Never media, wherever media_dirs point: kernel and device views of the host.
_SYSTEM_DIRS = (Path("/proc"), Path("/sys"), Path("/dev"))


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def local_video_problem(p: Path, allowed: Sequence[Path]) -> str | None:
    """Why the absolute path `p` may not be uploaded as a local video, or None.

    A queue file is hostile input: a path in it must not reach files the daemon can read but
    its author may not (README "Security"). So the file must be a regular file (not a
    symlink, device or FIFO), end in .mp4/.mov, lie inside one of the `allowed` folders once
    every symlinked folder on the way is resolved, and be readable."""
    real = Path(os.path.realpath(p.parent)) / p.name
    if any(_inside(real, d) for d in _SYSTEM_DIRS):
        return f"{p} is a system file (under /proc, /sys or /dev), not media"
    folders = [Path(os.path.realpath(d)) for d in allowed]
    if not any(_inside(real, d) for d in folders):
        shown = ", ".join(str(d) for d in allowed)
        return f"{p} is outside the folders local media may come from ({shown}; queue.media_dirs)"
    try:
        st = os.lstat(real)
    except OSError as e:
        return f"local file {p} {'does not exist' if e.errno == errno.ENOENT else f'cannot be read: {e.strerror}'}"
    if stat.S_ISLNK(st.st_mode):
        return f"{p} is a symbolic link; give the video file itself"
    if stat.S_ISDIR(st.st_mode):
        return f"{p} is a folder, not a video file"
    if not stat.S_ISREG(st.st_mode):
        return f"{p} is not a regular file"
    if p.suffix.lower() not in VIDEO_EXTS:
        return f"{p} must be an .mp4 or .mov video file (its extension is {p.suffix or 'missing'})"
    try:  # O_NOFOLLOW: a symlink swapped in since lstat() is not followed
        os.close(os.open(real, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK))
    except OSError as e:
        return f"local file {p} cannot be read: {e.strerror}"
    return None


def _local_file(ctx: Ctx, path: str, written: str, base_dir: Path) -> str | None:
    bad = unusable_char(written)
    if bad:
        ctx.add(path, f"{leaf(path)} {bad}")
        return None
    p = Path(written).expanduser()
    relative = not p.is_absolute()
    p = Path(os.path.abspath(base_dir / p))
    problem = local_video_problem(p, ctx.media_dirs or (base_dir,))
    if problem:
        missing = relative and "does not exist" in problem
        ctx.add(path, problem + (" (relative paths are read from the queue file's folder)" if missing else ""))
        return None
    return str(p)


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
