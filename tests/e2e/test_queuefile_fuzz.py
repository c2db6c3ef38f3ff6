"""Property-based: whatever YAML a hostile file holds (valid shapes with hostile scalars, random
tags, random bytes), `igsched validate` ends with exit 0 or 2 and never a traceback, and
`igsched enqueue` imports nothing from a file with a problem (README "Queue files")."""

from __future__ import annotations

import dataclasses
import json
import tempfile
from pathlib import Path

import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scheduler.cli import main
from scheduler.problems import InvalidInput
from scheduler.queuefile import load_queue_file
from scheduler.store import Store
from tests.helpers import settings_for

SETTINGS = settings_for("sqlite://")

HOSTILE_SNIPPETS = [
    "2027-02-30 10:00:00Z", "2027-01-01 10:00:60Z", "2027-13-01 10:00:00Z",
    "2027-01-01 10:00:00+25:00", "9999-12-31 23:00:00-05:00", "0001-01-01 00:30:00+01:00",
    "2027-01-01", "now", "2099-01-01T10:00:00+01:00", '"\\0"', '"\\ud800"', '"\\udfff x"',
    '"\\x1b[31m"', "https://[::1/x.jpg", "https://h:99999/x.jpg", "https://u:p@h/x.jpg",
    "https://169.254.169.254/latest/meta-data/x.jpg", "https://cdn.example.com/a.jpg",
    "https://cdn.example.com/a.mp4", "/etc/shadow", "../../../../etc/passwd",
    "/proc/self/environ", "clip", "1" * 5000, "-1", "1e999", ".nan", "~", "[]", "{}",
    "[[[[[[]]]]]]", "&a x", "*a", "<<: {}", "? [a]\n: b", "'", '"', "|", ">", "@", "`",
    "%", "- - -", "0x_", "0o8", "+.inf", "yes", "on", "y", "NULL",
]
TAGS = ["", "!!int ", "!!float ", "!!bool ", "!!timestamp ", "!!str ", "!!null ", "!!binary ",
        "!!set ", "!!omap ", "!!pairs ", "!!seq ", "!!map ", "!foo ", "!!python/name:os.system ",
        "!<tag:yaml.org,2002:int> "]
FIELDS = ["key", "at", "account", "timezone", "image", "reel", "story", "carousel", "caption",
          "alt_text", "cover", "thumb_offset_ms", "share_to_feed", "audio_name", "location_id",
          "user_tags", "collaborators", "first_comment", "trial", "unknown_field"]


def _text_scalar(s: str) -> str:
    return json.dumps(s)  # a JSON string is a YAML double-quoted scalar (escapes included)


scalars = st.builds(
    lambda tag, value: tag + value,
    st.sampled_from(TAGS),
    st.one_of(st.sampled_from(HOSTILE_SNIPPETS), st.text(max_size=40).map(_text_scalar),
              st.integers().map(str)),
)


@st.composite
def queue_docs(draw: st.DrawFn) -> str:
    """A queue file of the right shape, with hostile values in its fields."""
    lines = [f"account: {draw(st.sampled_from(['shop', 'nobody', '!!int x', '[shop]']))}",
             f"timezone: {draw(st.sampled_from(['UTC', 'Europe/Berlin', 'Mars/Base', '!!float 1']))}",
             "posts:"]
    for _ in range(draw(st.integers(1, 3))):
        fields = draw(st.lists(st.sampled_from(FIELDS), min_size=1, max_size=5, unique=True))
        body = [f"{name}: {draw(scalars)}".replace("\n", "\n    ") for name in fields]
        lines.append("  - " + "\n    ".join(body))
    return "\n".join(lines) + "\n"


def _bytes_docs() -> st.SearchStrategy[bytes]:
    return st.one_of(st.binary(max_size=200), queue_docs().map(lambda t: t.encode("utf-8", "surrogatepass")))


def _assert_clean(path: Path) -> None:
    try:
        specs = load_queue_file(path, SETTINGS, _now())
    except InvalidInput as e:
        assert e.problems
        for p in e.problems:
            shown = str(p)
            shown.encode("utf-8")  # printable: no lone surrogate left
            assert all(c.isprintable() or c == " " for c in shown), shown
            assert len(shown) <= 600
    else:
        for spec in specs:  # what is accepted can be stored and sent: encodable, no NUL
            text = json.dumps(dataclasses.asdict(spec), ensure_ascii=False, default=str)
            text.encode("utf-8")
            assert "\x00" not in text and "\\u0000" not in text


def _now():  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime

    return datetime.now(UTC)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(queue_docs())
def test_loading_hostile_documents_gives_problems_never_exceptions(text: str) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "q.yaml"
        path.write_bytes(text.encode("utf-8", "surrogatepass"))
        _assert_clean(path)


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=300))
def test_loading_random_bytes_gives_problems_never_exceptions(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "q.yaml"
        path.write_bytes(data)
        _assert_clean(path)


GOOD = yaml.safe_dump({"account": "shop", "posts": [
    {"key": "good-one", "at": "2099-01-01T10:00:00+00:00", "image": "https://cdn.example.com/a.jpg"}]})


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_bytes_docs())
def test_cli_validate_and_enqueue_never_crash_nor_import_from_a_bad_file(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d)
        db_url = f"sqlite:///{folder / 'db.sqlite'}"
        config = folder / "config.yaml"
        config.write_text(yaml.safe_dump({"database": {"url": db_url}, "accounts": [
            {"name": "shop", "ig_user_id": "1", "token_env": "IGSCHED_TEST_TOKEN_SHOP"}]}))
        good, hostile = folder / "good.yaml", folder / "hostile.yaml"
        good.write_text(GOOD)
        hostile.write_bytes(data)
        runner = CliRunner()
        r = runner.invoke(main, ["--config", str(config), "validate", str(hostile)])
        assert r.exit_code in (0, 2), r.output
        assert r.exception is None or isinstance(r.exception, SystemExit), r.exception
        assert "Traceback" not in r.output
        r2 = runner.invoke(main, ["--config", str(config), "enqueue", str(good), str(hostile)])
        assert r2.exit_code == r.exit_code, r2.output
        assert r2.exception is None or isinstance(r2.exception, SystemExit), r2.exception
        if r2.exit_code == 2:  # all or nothing: not even the good file's post
            assert "nothing was changed" in r2.stderr
            if Path(folder / "db.sqlite").exists():
                assert Store(db_url).list_posts(["planned"]) == []
        else:
            assert "good-one" in r2.stdout
