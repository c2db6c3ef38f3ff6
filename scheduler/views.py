"""Posts as the user sees them: dicts for --json (README "Command line", --json) and rows for tables."""

from __future__ import annotations

from typing import Any

from scheduler.clock import iso
from scheduler.store import MediaRecord, PostRecord


def post_view(p: PostRecord) -> dict[str, Any]:
    d: dict[str, Any] = {
        "key": p.key,
        "account": p.account,
        "kind": p.kind,
        "at": iso(p.due_at),
        "asap": p.asap,
        "state": p.state,
        "reason": p.reason,
        "next_action_at": iso(p.next_action_at) if p.state not in ("published", "failed", "cancelled") else None,
        "source_file": p.source_file,
    }
    if p.state == "published":
        d.update(
            media_id=p.media_id,
            permalink=p.permalink,
            published_at=iso(p.published_at),
            lateness_s=round(p.lateness_s, 3) if p.lateness_s is not None else None,
        )
    if p.spec.get("first_comment"):
        d["first_comment"] = {"state": p.comment_state, "comment_id": p.comment_id, "error": p.comment_error}
    return d


def detail_view(p: PostRecord, media: list[MediaRecord], events: list[dict[str, Any]],
                calls: list[dict[str, Any]]) -> dict[str, Any]:
    d = post_view(p)
    d["container_id"] = p.container_id
    d["spec"] = p.spec
    d["media"] = [
        {"position": m.position, "kind": m.media_kind, "source": m.source, "container_id": m.container_id,
         "status": m.status_code, "error": m.error}
        for m in media
    ]
    d["events"] = [
        {"at": iso(e["at"]), "from": e["from_state"], "to": e["to_state"], "reason": e["reason"], "by": e["actor"]}
        for e in events
    ]
    d["api_calls"] = [
        {"at": iso(c["at"]), "endpoint": c["endpoint"], "http_status": c["http_status"], "outcome": c["outcome"],
         "error": (f"{c['error_code']}/{c['error_subcode']}" if c["error_code"] is not None else None),
         "fbtrace_id": c["fbtrace_id"], "duration_ms": c["duration_ms"]}
        for c in calls
    ]
    return d


def short_time(value: str | None) -> str:
    """ISO → 'YYYY-MM-DD HH:MM:SS.mmm' for tables (UTC)."""
    if not value:
        return "-"
    text = value.replace("T", " ").removesuffix("+00:00")  # the columns say UTC
    return text[:23]
