"""Small builders shared by tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from scheduler.config import Settings, settings_from_dict
from scheduler.models import MediaItem, PostSpec


def settings_for(db_url: str, base_url: str = "http://127.0.0.1:9", **extra: Any) -> Settings:
    data: dict[str, Any] = {
        "database": {"url": db_url},
        "graph": {"base_url": base_url, "timeout_s": 5},
        "accounts": [
            {"name": "shop", "ig_user_id": "17841400000000001", "token_env": "IGSCHED_TEST_TOKEN_SHOP"},
            {"name": "brand2", "ig_user_id": "17841400000000002", "token_env": "IGSCHED_TEST_TOKEN_BRAND2"},
        ],
        "daemon": {"identity": "test-daemon", "tick_s": 1, "lease_s": 5},
        "staging": {"lead_s": {"image": 3, "story": 3, "reel": 5, "carousel": 5}, "poll_min_s": 0.2},
        "retries": {"base_s": 0.2, "cap_s": 2},
    }
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(data.get(k), dict):
            data[k] = {**data[k], **v}
        else:
            data[k] = v
    return settings_from_dict(data, "test settings")


def image_spec(key: str, in_s: float = 60.0, account: str = "shop", caption: str | None = "hello",
               url: str = "https://cdn.example.com/a.jpg", **kw: Any) -> PostSpec:
    return PostSpec(
        key=key, key_explicit=True, account=account, kind="image",
        at=datetime.now(UTC) + timedelta(seconds=in_s),
        media=(MediaItem("image", url),), caption=caption, source_file="test.yaml", **kw,
    )


@contextmanager
def counted(engine: sa.Engine) -> Iterator[list[str]]:
    """The SQL statements an engine sends while inside (BEGIN included: it is a round trip
    too)."""
    seen: list[str] = []

    def note(_c: Any, _cur: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    sa.event.listen(engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        sa.event.remove(engine, "before_cursor_execute", note)
