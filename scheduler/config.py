"""config.yaml → typed, validated settings. Secrets are read lazily and never printed."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from scheduler.problems import InvalidInput, Problem

DEFAULT_PATHS = ("./config.yaml", "/etc/igsched/config.yaml")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatabaseSettings(_Strict):
    url: str = "sqlite:///igsched.db"


class GraphSettings(_Strict):
    base_url: str = "https://graph.instagram.com"
    api_version: str = "v23.0"
    timeout_s: Annotated[float, Field(gt=0)] = 30.0


class AccountSettings(_Strict):
    name: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")]
    ig_user_id: Annotated[str, Field(pattern=r"^[0-9]+$")]
    token_env: str | None = None
    token_file: Path | None = None

    @model_validator(mode="after")
    def _one_token_source(self) -> AccountSettings:
        if (self.token_env is None) == (self.token_file is None):
            raise ValueError("give exactly one of token_env or token_file")
        return self

    def token(self) -> str:
        """The access token, read now (files may be rotated by systemd credentials)."""
        if self.token_env is not None:
            value = os.environ.get(self.token_env)
            if not value:
                raise TokenMissing(f"account {self.name}: environment variable {self.token_env} is not set")
            return value.strip()
        assert self.token_file is not None
        try:
            return self.token_file.read_text().strip()
        except OSError as e:
            raise TokenMissing(
                f"account {self.name}: cannot read token_file {self.token_file}: {e.strerror}"
            ) from None


class TokenMissing(Exception):
    """The configured token source has no token (the message never contains a token)."""


class QueueSettings(_Strict):
    inbox_dir: Path | None = None
    # where local video files may come from; empty: the queue file's folder and below
    media_dirs: list[Path] = []
    # an inbox file is imported once its size and time stamp have not changed for this long
    settle_s: Annotated[float, Field(ge=0)] = 10.0
    past_grace_s: Annotated[float, Field(ge=0)] = 60.0
    max_file_bytes: Annotated[int, Field(gt=0)] = 5_000_000


class DaemonSettings(_Strict):
    identity: str | None = None  # default: host name
    tick_s: Annotated[float, Field(gt=0)] = 5.0
    lease_s: Annotated[float, Field(gt=0)] = 30.0
    workers: Annotated[int, Field(gt=0, le=256)] = 16

    def resolved_identity(self) -> str:
        return self.identity or socket.gethostname()


class LeadSettings(_Strict):
    """How long before its time a post's containers are created (seconds)."""

    image: Annotated[float, Field(ge=0, le=20 * 3600)] = 600.0
    story: Annotated[float, Field(ge=0, le=20 * 3600)] = 900.0
    reel: Annotated[float, Field(ge=0, le=20 * 3600)] = 3600.0
    carousel: Annotated[float, Field(ge=0, le=20 * 3600)] = 1800.0


class StagingSettings(_Strict):
    lead_s: LeadSettings = LeadSettings()
    poll_min_s: Annotated[float, Field(gt=0)] = 1.0
    poll_max_s: Annotated[float, Field(gt=0)] = 60.0
    # a staged container older than this is recreated rather than published (Meta: 24 h)
    container_max_age_s: Annotated[float, Field(gt=0)] = 23 * 3600.0
    # Meta: at most 400 containers per account in a rolling 24 h (a carousel uses items + 1);
    # staging waits for a free slot rather than run into the limit
    containers_per_day: Annotated[int, Field(ge=1)] = 400


class PreflightSettings(_Strict):
    """Fetching the media before staging, so a post that cannot succeed fails early."""

    enabled: bool = True
    timeout_s: Annotated[float, Field(gt=0)] = 10.0


class RetrySettings(_Strict):
    max_tries: Annotated[int, Field(ge=1)] = 5
    base_s: Annotated[float, Field(gt=0)] = 1.0
    cap_s: Annotated[float, Field(gt=0)] = 300.0


class LimitSettings(_Strict):
    soft_threshold_pct: Annotated[float, Field(gt=0, le=100)] = 80.0
    quota_refresh_s: Annotated[float, Field(gt=0)] = 300.0
    # used only until content_publishing_limit has answered once (the lowest documented cap)
    quota_fallback_total: Annotated[int, Field(gt=0)] = 25
    reauth_check_s: Annotated[float, Field(gt=0)] = 300.0
    throttle_backoff_s: Annotated[float, Field(gt=0)] = 600.0


class Settings(_Strict):
    database: DatabaseSettings = DatabaseSettings()
    graph: GraphSettings = GraphSettings()
    accounts: list[AccountSettings] = []
    queue: QueueSettings = QueueSettings()
    daemon: DaemonSettings = DaemonSettings()
    staging: StagingSettings = StagingSettings()
    preflight: PreflightSettings = PreflightSettings()
    retries: RetrySettings = RetrySettings()
    limits: LimitSettings = LimitSettings()
    log_level: str = "INFO"

    @model_validator(mode="after")
    def _unique_accounts(self) -> Settings:
        names = [a.name for a in self.accounts]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"account names must be unique; repeated: {', '.join(dupes)}")
        return self

    def account(self, name: str) -> AccountSettings | None:
        return next((a for a in self.accounts if a.name == name), None)


def _loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def settings_from_dict(data: Any, source: str) -> Settings:
    """Validate a parsed config document; every problem names its key path."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise InvalidInput([Problem(source, "the configuration must be a mapping of settings")])
    try:
        return Settings.model_validate(data)
    except ValidationError as e:
        problems = []
        for err in e.errors():
            msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
            problems.append(Problem(source, msg, field=_loc(err["loc"])))
        raise InvalidInput(problems) from None


def find_config_path(explicit: str | None) -> Path | None:
    if explicit:
        return Path(explicit)
    env = os.environ.get("IGSCHED_CONFIG")
    if env:
        return Path(env)
    for p in DEFAULT_PATHS:
        if Path(p).is_file():
            return Path(p)
    return None


def load_settings(path: Path) -> Settings:
    try:
        text = path.read_text()
    except OSError as e:
        raise InvalidInput([Problem(str(path), f"cannot read the configuration: {e.strerror}")]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise InvalidInput([Problem(str(path), f"not valid YAML: {e}")]) from None
    return settings_from_dict(data, str(path))
