"""The Python entry point (`scheduler.engage.api.Engagement`): the README's example, run
against the emulator on both databases."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from scheduler.config import load_settings
from scheduler.emulator import RunningEmulator
from scheduler.engage.api import Engagement
from scheduler.engage.messages import message_from_flags, parse_message
from scheduler.problems import InvalidInput
from tests.e2e.engagement_support import PERSON, Cli, make_cli


@pytest.fixture
def cli(tmp_path: Path, db_url: str, emulator: RunningEmulator, monkeypatch: pytest.MonkeyPatch) -> Cli:
    return make_cli(tmp_path, db_url, emulator, monkeypatch)


def test_the_readme_example(cli: Cli) -> None:
    media = cli.media()
    comment = cli.emu.state.add_comment(media, "Is this in stock?", "visitor", from_id=PERSON)
    settings = load_settings(cli.config)

    async def main() -> None:
        async with Engagement(settings) as eng:
            for c in await eng.comments(media, limit=None):
                if "stock" in (c.text or ""):
                    await eng.reply(c.id, "Yes! Sent you a DM", key=f"stock-reply-{c.id}")
                    await eng.private_reply(c.id, "It is in stock: https://shop.example.com", key=f"stock-dm-{c.id}")
            who = await eng.profile(PERSON)
            sent = await eng.send(message_from_flags(to=PERSON, text=f"Hi {who['name']}!"), key="hello-ada")
            assert sent.view() == {"key": "hello-ada", "state": "done", "recipient_id": PERSON,
                                   "message_id": sent.action.result_id, "reason": None}
            again = await eng.send(parse_message({"to": PERSON, "text": "Hi again"}), key="hello-ada")
            assert again.earlier and again.action.id == sent.action.id
            with pytest.raises(InvalidInput) as bad:
                await eng.reply("not-an-id", "x")
            assert bad.value.problems[0].field == "COMMENT_ID"
            assert {a.key for a in await eng.actions(state="done")} == {
                f"stock-reply-{comment}", f"stock-dm-{comment}", "hello-ada"}

    asyncio.run(main())
    assert len(cli.requests("messages")) == 2 and len(cli.requests("replies", "POST")) == 1
    assert cli.requests("profile")[0]["params"] == {"fields": "name,username,profile_pic"}
