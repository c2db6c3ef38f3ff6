"""The inbox folder: queue files dropped there are imported by the daemon (README "The inbox").

A handled file moves to done/; an invalid one to rejected/ with `<name>.error.txt` beside it
listing every problem. An invalid file imports nothing, and one bad file never stops the
others.

Everything in the inbox is hostile input: symbolic links, folders, FIFOs and devices are
refused without being opened; error files quote the file only in short, escaped excerpts
and are written without world access. The safe way to drop a file is to write it elsewhere
on the same file system and rename it into the inbox (as maildir does). For writers that
write in place, a file is imported only when it has not changed for `queue.settle_s` and no
process has it open for writing (as far as /proc tells: best effort, Linux only, and only
for processes this user may see); a file that still changes after it was imported (its
writer kept it open) is moved back and imported again as a new version, which its keys
make idempotent.
"""

from __future__ import annotations

import logging
import os
import stat
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from scheduler.config import Settings
from scheduler.engage.actions import queued_message_action
from scheduler.problems import InvalidInput, Problem, shown
from scheduler.queuefile import load_queue_document
from scheduler.store import EnqueueReport, NotAllowed, Store

log = logging.getLogger(__name__)
SUFFIXES = (".yaml", ".yml")
ERROR_FILE_MODE = 0o640  # and the daemon's umask on top (the service sets 0077): never 0644
MAX_ERROR_LINES = 20
MAX_ERROR_LINE_CHARS = 300
WATCH_AFTER_IMPORT_S = 3600.0  # how long an imported file is watched for late writes
MAX_WATCHED = 500
_WRITE_MODES = (os.O_WRONLY, os.O_RDWR)
_LATER, _STOP = "left for the next scan", "stop this scan"


@dataclass
class InboxResult:
    file: str
    report: EnqueueReport | None
    problems: list[str]


@dataclass(frozen=True)
class _Stamp:
    """What a file looked like: a change in any of these means it was written to."""

    size: int
    mtime_ns: int
    ino: int

    @staticmethod
    def of(st: os.stat_result) -> _Stamp:
        return _Stamp(st.st_size, st.st_mtime_ns, st.st_ino)


@dataclass
class _Watched:
    stamp: _Stamp
    since: float


@dataclass
class Inbox:
    """One inbox folder, and the files imported from it that are still watched."""

    folder: Path
    watched: dict[Path, _Watched] = field(default_factory=dict)

    def scan(self, settings: Settings, store: Store, actor: str, now: float | None = None) -> list[InboxResult]:
        """Import every settled queue file; `now` (Unix seconds) defaults to the clock."""
        now = time.time() if now is None else now
        self._recall_changed(now)
        results: list[InboxResult] = []
        candidates = self._candidates()
        settled = [p for p, st in candidates
                   if stat.S_ISREG(st.st_mode) and now - st.st_mtime >= settings.queue.settle_s]
        busy = open_for_writing(settled) if settled else set()  # reading /proc costs: only if needed
        for path, st in candidates:
            if not stat.S_ISREG(st.st_mode):
                kind = "a symbolic link" if stat.S_ISLNK(st.st_mode) else "not a regular file"
                results.append(self._reject(path, [Problem(path.name, (
                    f"is {kind}; the inbox takes only regular files (write the file elsewhere, "
                    "then move it into the inbox)"))]))
                continue
            if now - st.st_mtime < settings.queue.settle_s or path in busy:
                continue  # still being written, perhaps: the next scan looks again
            result = self._import(path, _Stamp.of(st), settings, store, actor, now)
            if result is _STOP:
                break  # the database is away: every later file would fail the same way
            if isinstance(result, InboxResult):
                results.append(result)
        return results

    def _candidates(self) -> list[tuple[Path, os.stat_result]]:
        found = []
        try:
            entries = sorted(os.scandir(self.folder), key=lambda e: e.name)
        except OSError as e:
            log.warning("inbox %s cannot be read: %s", shown(str(self.folder)), e.strerror)
            return []
        for entry in entries:
            # dot files are a writer's temporary files (or ours to ignore)
            if entry.name.startswith(".") or not entry.name.lower().endswith(SUFFIXES):
                continue
            try:
                found.append((Path(entry.path), entry.stat(follow_symlinks=False)))
            except OSError:
                continue  # gone since the listing
        return found

    def _import(self, path: Path, before: _Stamp, settings: Settings, store: Store, actor: str,
                now: float) -> InboxResult | str:
        try:
            doc = load_queue_document(path, settings, datetime.fromtimestamp(now, UTC),
                                      follow_symlinks=False)
        except InvalidInput as e:
            return self._reject(path, e.problems)
        except Exception as e:  # a bug must cost this file only, never the files after it
            log.exception("inbox: %s could not be read", shown(path.name))
            return self._reject(path, [Problem(path.name, f"could not be read ({type(e).__name__}); "
                                                          "see the daemon log")])
        try:
            after = _Stamp.of(os.lstat(path))
        except OSError:
            return _LATER  # gone while it was read
        if after != before:  # written to while we read it: read it again once it settles
            return _LATER
        try:
            report = store.enqueue(doc.posts, actor, [queued_message_action(m) for m in doc.messages],
                                   settings.skip_check())
        except NotAllowed as e:
            post, field = (f"key {e.source[1]}", "account") if e.source is not None else (None, None)
            return self._reject(path, [Problem(path.name, str(e), post, field)])
        except Exception as e:
            log.warning("inbox: %s not imported now: %s: %s", shown(path.name), type(e).__name__,
                        shown(str(e).splitlines()[0] if str(e) else "", 200))
            return _STOP
        target = _move(path, self.folder / "done")
        self._watch(target, after, now)
        log.info("inbox: imported %s: %d new, %d updated, %d unchanged, %d kept; %d messages planned",
                 shown(path.name), len(report.new), len(report.updated), len(report.unchanged), len(report.kept),
                 sum(1 for a in report.actions if a.outcome == "new"))
        return InboxResult(path.name, report, [])

    def _reject(self, path: Path, problems: list[Problem]) -> InboxResult:
        lines = [shown(str(p), MAX_ERROR_LINE_CHARS) for p in problems]
        if len(lines) > MAX_ERROR_LINES:
            lines = [*lines[:MAX_ERROR_LINES], f"… and {len(lines) - MAX_ERROR_LINES} more problems"]
        try:
            target = _move(path, self.folder / "rejected")
            _write_private(target.with_name(target.name + ".error.txt"), "\n".join(lines) + "\n")
        except OSError as e:
            log.warning("inbox: could not move %s to rejected/: %s", shown(path.name), e.strerror)
            return InboxResult(path.name, None, lines)
        log.warning("inbox: rejected %s (%d problems), moved to %s", shown(path.name), len(problems),
                    shown(str(target)))
        return InboxResult(path.name, None, lines)

    def _watch(self, target: Path, stamp: _Stamp, now: float) -> None:
        self.watched[target] = _Watched(stamp, now)
        if len(self.watched) > MAX_WATCHED:
            oldest = min(self.watched, key=lambda p: self.watched[p].since)
            del self.watched[oldest]

    def _recall_changed(self, now: float) -> None:
        """A file written to after its import goes back into the inbox, to be imported again."""
        for path, seen in list(self.watched.items()):
            try:
                st = os.lstat(path)
            except OSError:
                del self.watched[path]
                continue
            if _Stamp.of(st) == seen.stamp:
                if now - seen.since > WATCH_AFTER_IMPORT_S:
                    del self.watched[path]
                continue
            del self.watched[path]
            back = _free_name(self.folder, path.name.split("-", 1)[-1] if _stamped(path.name) else path.name)
            try:
                os.rename(path, back)
            except OSError:
                continue
            log.warning("inbox: %s changed after it was imported; importing it again", shown(path.name))


_INBOXES: dict[Path, Inbox] = {}


def scan_inbox(settings: Settings, store: Store, actor: str, now: float | None = None) -> list[InboxResult]:
    """Scan the configured inbox (the daemon's tick); files it watches are remembered."""
    folder = settings.queue.inbox_dir
    if folder is None or not folder.is_dir():
        return []
    inbox = _INBOXES.setdefault(folder.resolve(), Inbox(folder))
    return inbox.scan(settings, store, actor, now)


def open_for_writing(paths: list[Path]) -> set[Path]:
    """Which of `paths` some process has open for writing, as far as /proc tells (Linux, and
    only processes this user may see: best effort; elsewhere, nothing is known)."""
    wanted = {os.path.realpath(p): p for p in paths}
    busy: set[Path] = set()
    try:
        pids = [d for d in os.listdir("/proc") if d.isdigit()]
    except OSError:
        return busy
    for pid in pids:
        fd_dir = f"/proc/{pid}/fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue  # gone, or not ours to see
        for fd in fds:
            try:
                target = os.readlink(f"{fd_dir}/{fd}")
            except OSError:
                continue
            if target in wanted and _writable(pid, fd):
                busy.add(wanted[target])
    return busy


def _writable(pid: str, fd: str) -> bool:
    try:
        with open(f"/proc/{pid}/fdinfo/{fd}") as f:
            for line in f:
                if line.startswith("flags:"):
                    return (int(line.split()[1], 8) & os.O_ACCMODE) in _WRITE_MODES
    except (OSError, ValueError, IndexError):
        pass
    return True  # cannot tell how it is open: assume the worst, look again next scan


def _stamped(name: str) -> bool:
    head = name.split("-", 1)[0]
    return len(head) == 21 and head[8] == "T" and head.replace("T", "").isdigit()


def _free_name(folder: Path, name: str) -> Path:
    target = folder / name
    if not os.path.lexists(target):
        return target
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
    return folder / f"{stamp}-{name}"


def _move(path: Path, folder: Path) -> Path:
    folder.mkdir(mode=0o750, exist_ok=True)
    target = _free_name(folder, path.name)
    os.rename(path, target)  # a symlink moves as the link: nothing is followed
    return target


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, ERROR_FILE_MODE)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
