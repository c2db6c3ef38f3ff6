"""Shared set-up for the engagement tests: a configured CLI against the emulator."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from scheduler.cli import main
from scheduler.emulator import RunningEmulator

TOKEN = "IGAAJengagementTOKEN0123456789abcdef"
TOKEN2 = "IGAAJengagementTOKEN2abcdef0123456789"
IG = "17841400000000001"
IG2 = "17841400000000002"
PERSON = "6543210987654321"
ENV = "IGSCHED_TEST_TOKEN_SHOP"


@dataclass
class Cli:
    emu: RunningEmulator
    config: Path
    db_url: str
    run: Callable[..., tuple[int, str, str]]

    def json(self, *args: str) -> Any:
        code, out, err = self.run(*args, "--json")
        assert code == 0, (code, out, err)
        return json.loads(out)

    def requests(self, endpoint: str | None = None, method: str | None = None) -> list[dict[str, Any]]:
        return [r for r in self.emu.state.requests
                if (endpoint is None or r["endpoint"] == endpoint) and (method is None or r["method"] == method)]

    def media(self, account: str = IG) -> str:
        """A published media of the account (made in the emulator directly: no request logged)."""
        state = self.emu.state
        cid = state.create_container(account, {"image_url": "https://cdn.example.com/a.jpg"},
                                     f"{self.emu.base_url}/ig-api-upload/v23.0")["id"]
        state.advance(5)
        return str(state.publish(account, {"creation_id": cid}).id)


def write_config(tmp: Path, db_url: str, base_url: str, two_accounts: bool = False, **extra: Any) -> Path:
    accounts = [{"name": "shop", "ig_user_id": IG, "token_env": ENV}]
    if two_accounts:
        accounts.append({"name": "brand2", "ig_user_id": IG2, "token_env": "IGSCHED_TEST_TOKEN_BRAND2"})
    cfg: dict[str, Any] = {
        "database": {"url": db_url},
        "graph": {"base_url": base_url, "timeout_s": 5},
        "accounts": accounts,
        "daemon": {"identity": "test-daemon", "tick_s": 1, "lease_s": 5},
        "retries": {"base_s": 0.1, "cap_s": 1},
        **extra,
    }
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def make_cli(tmp: Path, db_url: str, emu: RunningEmulator, monkeypatch: pytest.MonkeyPatch,
             **extra: Any) -> Cli:
    monkeypatch.setenv(ENV, TOKEN)
    monkeypatch.setenv("IGSCHED_TEST_TOKEN_BRAND2", TOKEN2)
    emu.state.add_account(IG, username="shop", token=TOKEN)
    emu.state.add_account(IG2, username="brand2", token=TOKEN2)
    emu.state.add_person(PERSON, name="Ada Lovelace", username="ada", profile_pic="https://cdn.example.com/ada.jpg")
    config = write_config(tmp, db_url, emu.base_url, **extra)
    runner = CliRunner()

    def run(*args: str) -> tuple[int, str, str]:
        r = runner.invoke(main, ["--config", str(config), *args], catch_exceptions=False)
        return r.exit_code, r.stdout, r.stderr

    return Cli(emu, config, db_url, run)
