"""config.yaml → typed, validated settings. Secrets are read lazily and never printed."""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from scheduler.problems import InvalidInput, Problem
from scheduler.redaction import remember_secret

DEFAULT_PATHS = ("./config.yaml", "/etc/igsched/config.yaml")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
MAX_TOKEN_BYTES = 4096  # Meta's tokens are a few hundred characters


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
        """The access token, read now (files may be rotated by systemd credentials).

        A token is one line: one trailing newline is dropped (editors and `echo` add it);
        anything else that is not a visible character (a second line, a space, a control
        character) refuses the token, naming the account and never the value."""
        if self.token_env is not None:
            value = os.environ.get(self.token_env)
            if not value:
                raise TokenMissing(f"account {self.name}: environment variable {self.token_env} is not set")
            return self._one_line(value, f"environment variable {self.token_env}")
        assert self.token_file is not None
        try:
            with self.token_file.open("rb") as f:
                raw = f.read(MAX_TOKEN_BYTES + 1)
        except OSError as e:
            raise TokenMissing(
                f"account {self.name}: cannot read token_file {self.token_file}: {e.strerror}"
            ) from None
        try:
            value = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise TokenMissing(
                f"account {self.name}: token_file {self.token_file} is not text (not UTF-8)"
            ) from None
        if len(raw) > MAX_TOKEN_BYTES:
            raise TokenMissing(
                f"account {self.name}: token_file {self.token_file} is larger than a token "
                f"({MAX_TOKEN_BYTES} bytes at most)"
            )
        return self._one_line(value, f"token_file {self.token_file}")

    def _one_line(self, value: str, source: str) -> str:
        token = value.removesuffix("\n").removesuffix("\r")
        if not token:
            raise TokenMissing(f"account {self.name}: {source} is empty")
        for i, c in enumerate(token, start=1):
            if not c.isprintable() or c.isspace() or not c.isascii():  # HTTP headers: ASCII
                what = ("a line break" if c in "\r\n" else "a space" if c.isspace()
                        else "a character that is not ASCII" if c.isprintable() else "a control character")
                raise TokenMissing(
                    f"account {self.name}: the token in {source} contains {what} (character "
                    f"{i}); a token is one line of visible characters: write only the token"
                )
        remember_secret(token)
        return token


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

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        if value.upper() not in LOG_LEVELS:
            raise ValueError(f"unknown log level '{value}'; use one of {', '.join(LOG_LEVELS)}")
        return value.upper()

    @model_validator(mode="after")
    def _unique_accounts(self) -> Settings:
        names = [a.name for a in self.accounts]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"account names must be unique; repeated: {', '.join(dupes)}")
        return self

    def account(self, name: str) -> AccountSettings | None:
        return next((a for a in self.accounts if a.name == name), None)


def startup_problems(settings: Settings) -> list[str]:
    """What is wrong with a configuration that loads but cannot fully work: said once when
    the daemon starts, naming the account or key (never a token's value). Posts of an
    account without a usable token wait, with the same reason, until it is fixed."""
    found = []
    if not settings.accounts:
        found.append("no accounts are configured (accounts:); no post can be published")
    for acct in settings.accounts:
        try:
            acct.token()
        except TokenMissing as e:
            found.append(str(e))
            continue
        if acct.token_file is not None:
            try:
                mode = acct.token_file.stat().st_mode
            except OSError:
                continue  # gone since it was read: the posts will say so
            if mode & 0o004:
                found.append(
                    f"account {acct.name}: token_file {acct.token_file} can be read by every "
                    f"user of this host (mode {stat.S_IMODE(mode):04o}); chmod 600 it"
                )
    q = settings.queue
    if q.inbox_dir is not None and not q.inbox_dir.is_dir():
        found.append(f"queue.inbox_dir {q.inbox_dir} is not a folder that exists; "
                     "nothing is imported from it until it is")
    for folder in q.media_dirs:
        if not folder.is_dir():
            found.append(f"queue.media_dirs: {folder} is not a folder that exists")
    return found


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
