"""The inbox folder: queue files dropped there are imported by the daemon.

A handled file moves to done/; an invalid one to rejected/ with `<name>.error.txt` beside it
listing every problem. An invalid file imports nothing.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from scheduler.config import Settings
from scheduler.problems import InvalidInput
from scheduler.queuefile import load_queue_file
from scheduler.store import EnqueueReport, Store

log = logging.getLogger(__name__)
SUFFIXES = (".yaml", ".yml")
SETTLE_S = 1.0  # a file still being written is left for the next scan


@dataclass
class InboxResult:
    file: str
    report: EnqueueReport | None
    problems: list[str]


def _free_name(folder: Path, name: str) -> Path:
    target = folder / name
    if not target.exists():
        return target
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
    return folder / f"{stamp}-{name}"


def scan_inbox(settings: Settings, store: Store, actor: str) -> list[InboxResult]:
    inbox = settings.queue.inbox_dir
    if inbox is None or not inbox.is_dir():
        return []
    done, rejected = inbox / "done", inbox / "rejected"
    results = []
    for path in sorted(p for p in inbox.iterdir() if p.is_file() and p.suffix.lower() in SUFFIXES):
        try:
            if time.time() - path.stat().st_mtime < SETTLE_S:
                continue
        except FileNotFoundError:
            continue
        try:
            specs = load_queue_file(path, settings, datetime.now(UTC))
            report = store.enqueue(specs, actor)
        except InvalidInput as e:
            rejected.mkdir(exist_ok=True)
            target = _free_name(rejected, path.name)
            lines = [str(p) for p in e.problems]
            target.with_name(target.name + ".error.txt").write_text("\n".join(lines) + "\n")
            path.rename(target)
            log.warning("inbox: rejected %s (%d problems), moved to %s", path.name, len(lines), target)
            results.append(InboxResult(path.name, None, lines))
            continue
        done.mkdir(exist_ok=True)
        path.rename(_free_name(done, path.name))
        log.info("inbox: imported %s: %d new, %d updated, %d unchanged, %d kept", path.name,
                 len(report.new), len(report.updated), len(report.unchanged), len(report.kept))
        results.append(InboxResult(path.name, report, []))
    return results
