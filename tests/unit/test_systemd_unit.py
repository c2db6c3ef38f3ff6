"""systemd/igsched.service: the hardening the README promises, no credential wired to one
account, and (where systemd-analyze exists) an exposure score of 2.5 or less."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[2] / "systemd" / "igsched.service"


def _settings() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key, []).append(value)
    return found


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("UMask", "0077"), ("CapabilityBoundingSet", ""), ("SystemCallFilter", "@system-service"),
        ("ProtectClock", "yes"), ("ProtectHostname", "yes"), ("ProtectKernelLogs", "yes"),
        ("RestrictRealtime", "yes"), ("ProtectProc", "invisible"),
        ("EnvironmentFile", "-/etc/igsched/env"), ("NoNewPrivileges", "yes"),
    ],
)
def test_hardening_directives(key: str, value: str) -> None:
    assert value in _settings().get(key, []), key


def test_no_credential_is_wired_to_one_account() -> None:
    assert "LoadCredentialEncrypted" not in _settings()
    assert re.search(r"^#\s+LoadCredentialEncrypted=\w+:/etc/igsched/credentials/\w+$", UNIT.read_text(), re.M)


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_exposure_score() -> None:
    out = subprocess.run(["systemd-analyze", "security", "--offline=yes", str(UNIT)],
                         capture_output=True, text=True, timeout=60).stdout
    score = float(re.search(r"Overall exposure level for \S+: ([0-9.]+)", out)[1])  # type: ignore[index]
    assert score <= 2.5, out
