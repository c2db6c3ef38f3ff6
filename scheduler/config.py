"""config.yaml → typed, validated settings. Secrets are read lazily and never printed."""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import socket
import stat
from pathlib import Path
from typing import Annotated, Any, Literal, get_args
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from scheduler.problems import InvalidInput, Problem, foreign_keys
from scheduler.redaction import remember_secret
from scheduler.yamlcheck import duplicate_keys, written_twice, yaml_error_text

DEFAULT_PATHS = ("./config.yaml", "/etc/igsched/config.yaml")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
MAX_TOKEN_BYTES = 4096  # Meta's tokens are a few hundred characters
MAX_SECRET_BYTES = 4096  # an app secret, a verify token, a signing key: a line of text
MAX_CONFIG_BYTES = 1024 * 1024  # a configuration is a few KiB
MIN_GOOD_SECRET_CHARS = 12  # a webhook secret shorter than this is warned about at start


class _Strict(BaseModel):
    # no inf or nan: a duration of .inf passes every lower bound and overflows a timer later
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class _OnKey(_Strict):
    """Settings with an `on:` key (rules, notify targets)."""

    @model_validator(mode="before")
    @classmethod
    def _yaml11_on(cls, data: Any) -> Any:
        # YAML 1.1 reads a bare `on:` key as True; load_settings keeps it a string, and
        # this catches documents parsed elsewhere
        if isinstance(data, dict) and True in data and "on" not in data:
            data = {("on" if k is True else k): v for k, v in data.items()}
        return data


class DatabaseSettings(_Strict):
    url: str = "sqlite:///igsched.db"


class GraphSettings(_Strict):
    base_url: str = "https://graph.instagram.com"
    api_version: Annotated[str, Field(pattern=r"^/?v[0-9]{1,3}\.[0-9]{1,3}/?$")] = "v23.0"
    timeout_s: Annotated[float, Field(gt=0)] = 30.0
    # which login the tokens come from: Instagram Login tokens last 60 days and are refreshed;
    # auto: Instagram Login on graph.instagram.com only (a proxy or the emulator says which)
    login: Literal["auto", "instagram", "facebook"] = "auto"

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, v: str) -> str:
        # calls go to base_url/api_version/...: a scheme, a host and nothing a call would drop
        if any(c.isspace() or not c.isprintable() for c in v):
            raise ValueError("must not contain spaces, tabs, line breaks or control characters")
        try:
            parts = urlsplit(v)
            parts.port  # noqa: B018  (raises for a port that is not a number)
        except ValueError as e:
            raise ValueError(f"is not a URL ({e})") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http(s):// URL with a host, e.g. https://graph.instagram.com")
        if parts.username is not None or parts.password is not None:
            raise ValueError("must not carry a user name or password (the token goes in a header)")
        if parts.query or parts.fragment:
            raise ValueError("must not carry a query or a fragment")
        return v


class AccountSettings(_Strict):
    name: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")]
    ig_user_id: Annotated[str, Field(pattern=r"^[0-9]+$")]
    token_env: str | None = None
    token_file: Path | None = None
    # Facebook Login: the Facebook Page linked to the account; messages go to /{page-id}/messages
    page_id: Annotated[str | None, Field(pattern=r"^[0-9]+$")] = None

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
            raw = read_small_file(self.token_file, MAX_TOKEN_BYTES + 1)
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
        if token in _CHECKED_TOKENS:  # read at every step: checked and remembered once
            return token
        for i, c in enumerate(token, start=1):
            if not c.isprintable() or c.isspace() or not c.isascii():  # HTTP headers: ASCII
                what = ("a line break" if c in "\r\n" else "a space" if c.isspace()
                        else "a character that is not ASCII" if c.isprintable() else "a control character")
                raise TokenMissing(
                    f"account {self.name}: the token in {source} contains {what} (character "
                    f"{i}); a token is one line of visible characters: write only the token"
                )
        remember_secret(token)
        if len(_CHECKED_TOKENS) < 10_000:  # bounded: a process sees a few per account
            _CHECKED_TOKENS.add(token)
        return token


_CHECKED_TOKENS: set[str] = set()  # tokens found to be one line and remembered for redaction


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
    # shown in status, logs and leases: printable, one word
    identity: Annotated[str | None, Field(pattern=r"^[A-Za-z0-9_.:@-]{1,100}$")] = None  # default: host name
    tick_s: Annotated[float, Field(gt=0, le=3600)] = 5.0
    lease_s: Annotated[float, Field(gt=0, le=86400)] = 30.0
    workers: Annotated[int, Field(strict=True, gt=0, le=256)] = 64

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
    # after a publish request with no answer, Meta may still act on it for up to the client
    # timeout plus this margin; only then may the same container be published again
    publish_settle_margin_s: Annotated[float, Field(ge=0)] = 5.0


class EngagementSettings(_Strict):
    """Budgets checked before an engagement call (README "Engagement"): an action over one
    waits as `deferred` until the rolling hour frees a slot; it is never sent to be refused."""

    messages_per_hour: Annotated[int, Field(gt=0)] = 200  # DMs per account
    private_replies_per_hour: Annotated[int, Field(gt=0, le=750)] = 750  # per account (Meta: 750)
    profile_lookups_per_hour: Annotated[int, Field(gt=0)] = 200  # for the whole app
    profile_ttl_s: Annotated[float, Field(ge=0)] = 86400.0  # how long a cached profile is used


class SecretMissing(Exception):
    """A configured secret source (environment variable or file) holds nothing; the message
    names the source, never a value."""


def read_small_file(path: Path, limit: int) -> bytes:
    """Up to `limit` bytes of a regular file. Opened without blocking and checked before it
    is read: a FIFO, a device (`/dev/zero`) or a folder where a secret file should be raises
    OSError instead of hanging or filling memory."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(0, "not a regular file")
        with os.fdopen(fd, "rb", closefd=False) as f:
            return f.read(limit)
    finally:
        os.close(fd)


def _read_secret(what: str, env: str | None, path: Path | None) -> str:
    if env is not None:
        value = os.environ.get(env, "").strip()
        if not value:
            raise SecretMissing(f"{what}: environment variable {env} is not set")
        return value
    if path is None:
        raise SecretMissing(f"{what}: not configured")
    try:
        raw = read_small_file(path, MAX_SECRET_BYTES + 1)
    except OSError as e:
        raise SecretMissing(f"{what}: cannot read {path}: {e.strerror}") from None
    if len(raw) > MAX_SECRET_BYTES:
        raise SecretMissing(f"{what}: {path} is larger than a secret ({MAX_SECRET_BYTES} bytes at most)")
    try:
        value = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise SecretMissing(f"{what}: {path} is not text (not UTF-8)") from None
    if not value:
        raise SecretMissing(f"{what}: {path} is empty")
    return value


def _one_source(env: str | None, path: Path | None, env_key: str, file_key: str) -> None:
    if env is not None and path is not None:
        raise ValueError(f"give {env_key} or {file_key}, not both")


_LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


def is_loopback_host(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host.lower() in _LOOPBACK_NAMES


def check_outbound_url(url: str) -> str:
    """An https URL, or http to a loopback address (local relays and tests). Credentials in
    the URL are refused: URLs appear in logs, secrets must not."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as e:
        raise ValueError(f"not a usable URL: {e}") from None
    if not host:
        raise ValueError("the URL needs a host")
    if parts.username is not None or parts.password is not None:
        raise ValueError("put no credentials in the URL; use secret_env or secret_file")
    if parts.scheme == "https" or (parts.scheme == "http" and is_loopback_host(host)):
        return url
    raise ValueError("must be https (http only to a loopback address)")


class ForwardSettings(_Strict):
    """One relay target: each stored event is POSTed, signed with this secret."""

    url: str
    secret_env: str | None = None
    secret_file: Path | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        return check_outbound_url(v)

    @model_validator(mode="after")
    def _one_secret_source(self) -> ForwardSettings:
        if (self.secret_env is None) == (self.secret_file is None):
            raise ValueError("give exactly one of secret_env or secret_file")
        return self

    def secret(self) -> str:
        return _read_secret(f"forward to {_url_for_messages(self.url)}", self.secret_env,
                            self.secret_file)


def _url_for_messages(url: str) -> str:
    """Scheme and host only: a webhook URL's path is often a secret of its own."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


_LISTEN_RE = re.compile(r"(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[A-Za-z0-9.-]+)):(?P<port>[0-9]{1,5})")


def parse_listen(value: str) -> tuple[str, int]:
    """`host:port` or `[v6]:port` → (host, port); port 0 picks a free one."""
    match = _LISTEN_RE.fullmatch(value)
    if match is None:
        raise ValueError("expected host:port, e.g. 127.0.0.1:8788 or [::1]:8788")
    port = int(match.group("port"))
    if port > 65535:
        raise ValueError("the port must be at most 65535")
    return (match.group("v6") or match.group("host")), port


class WebhookSettings(_Strict):
    """The webhook receiver (served by `igsched run` when `listen` is set)."""

    listen: str | None = None
    path: Annotated[str, Field(pattern=r"^/[A-Za-z0-9._~/-]*$", max_length=200)] = (
        "/webhooks/instagram"
    )
    verify_token_env: str | None = None
    verify_token_file: Path | None = None
    app_secret_env: str | None = None
    app_secret_file: Path | None = None
    forward: list[ForwardSettings] = []
    forward_timeout_s: Annotated[float, Field(gt=0, le=300)] = 10.0
    forward_backoff_base_s: Annotated[float, Field(gt=0)] = 2.0
    forward_backoff_cap_s: Annotated[float, Field(gt=0)] = 900.0

    @field_validator("listen")
    @classmethod
    def _listen(cls, v: str | None) -> str | None:
        if v is not None:
            parse_listen(v)
        return v

    @model_validator(mode="after")
    def _sources(self) -> WebhookSettings:
        _one_source(self.verify_token_env, self.verify_token_file, "verify_token_env",
                    "verify_token_file")
        _one_source(self.app_secret_env, self.app_secret_file, "app_secret_env",
                    "app_secret_file")
        if self.listen is not None:
            if self.app_secret_env is None and self.app_secret_file is None:
                raise ValueError("listen needs app_secret_env or app_secret_file "
                                 "(unsigned events are refused)")
            if self.verify_token_env is None and self.verify_token_file is None:
                raise ValueError("listen needs verify_token_env or verify_token_file "
                                 "(Meta's subscription handshake)")
        return self

    def listen_address(self) -> tuple[str, int] | None:
        return None if self.listen is None else parse_listen(self.listen)

    def app_secret(self) -> str:
        return _read_secret("webhooks app secret", self.app_secret_env, self.app_secret_file)

    def verify_token(self) -> str:
        return _read_secret("webhooks verify token", self.verify_token_env,
                            self.verify_token_file)


RuleKind = Literal["comment", "mention", "message", "postback", "quick_reply", "optin"]
# reply, private reply and hide act on a comment of the account's own media (a mention is
# answered with a public reply only); message writes to the person who wrote or tapped
_ACTIONS_BY_KIND: dict[str, tuple[str, ...]] = {
    "comment": ("reply", "private_reply", "hide"),
    "mention": ("reply",),
    "message": ("message",),
    "postback": ("message",),
    "quick_reply": ("message",),
    "optin": ("message",),
}
DM_TEXT_MAX_BYTES = 1000
REPLY_TEXT_MAX_CHARS = 2200


class RuleSettings(_OnKey):
    """A rule: when an event of kind `on` (optionally of one account, one media) matches,
    these actions are planned, in the order reply, private_reply, message, hide."""

    name: Annotated[str, Field(min_length=1, max_length=80, pattern=r"^[A-Za-z0-9_.-]+$")]
    on: RuleKind
    account: str | None = None
    media: Annotated[str | None, Field(pattern=r"^[0-9]+$")] = None
    match: str | None = None
    private_reply: Annotated[str | None, Field(min_length=1)] = None
    reply: Annotated[str | None, Field(min_length=1, max_length=REPLY_TEXT_MAX_CHARS)] = None
    hide: bool = False
    message: Annotated[str | None, Field(min_length=1)] = None

    @field_validator("match")
    @classmethod
    def _regex(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                re.compile(v, re.IGNORECASE)
            except re.error as e:
                raise ValueError(f"not a valid regular expression: {e}") from None
        return v

    @model_validator(mode="after")
    def _actions_fit(self) -> RuleSettings:
        given = [a for a in ("reply", "private_reply", "message") if getattr(self, a)]
        if self.hide:
            given.append("hide")
        if not given:
            raise ValueError("a rule needs at least one action: reply, private_reply, "
                             "message or hide: true")
        allowed = _ACTIONS_BY_KIND[self.on]
        wrong = [a for a in given if a not in allowed]
        if wrong:
            raise ValueError(f"{', '.join(wrong)} cannot act on a {self.on} event "
                             f"(possible: {', '.join(allowed)})")
        if self.media is not None and self.on not in ("comment", "mention"):
            raise ValueError("media applies only to comment and mention rules")
        for name in ("private_reply", "message"):
            text = getattr(self, name)
            if text is not None and len(text.encode()) > DM_TEXT_MAX_BYTES:
                raise ValueError(f"{name} is longer than {DM_TEXT_MAX_BYTES} bytes (UTF-8)")
        return self

    def pattern(self) -> re.Pattern[str] | None:
        return None if self.match is None else re.compile(self.match, re.IGNORECASE)


class SecretsSettings(_Strict):
    # None: igsched creates igsched.key (mode 0600) in its state directory on first use
    key_file: Path | None = None


class TokenSettings(_Strict):
    refresh_days_left: Annotated[float, Field(gt=0, lt=60)] = 30.0
    check_s: Annotated[float, Field(gt=0)] = 60.0  # how often the daemon looks at token ages


class MetricsSettings(_Strict):
    listen: str | None = None  # e.g. 127.0.0.1:9464; None: no metrics endpoint

    @field_validator("listen")
    @classmethod
    def _listen(cls, v: str | None) -> str | None:
        if v is not None:
            parse_listen(v)
        return v


NotifyEvent = Literal["post_failed", "needs_reauth", "token_expiring", "post_late", "action_failed"]
NOTIFY_EVENTS: tuple[NotifyEvent, ...] = get_args(NotifyEvent)


class NotifyTarget(_OnKey):
    """Where events go: a URL (POST, signed) or a command (the JSON on standard input)."""

    url: str | None = None
    command: Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1)] | None = None
    secret_env: str | None = None  # HMAC key of X-Igsched-Signature-256
    secret_file: Path | None = None
    timeout_s: Annotated[float, Field(gt=0, le=300)] = 10.0
    on: list[NotifyEvent] = Field(default_factory=lambda: list(NOTIFY_EVENTS))

    @field_validator("url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        return None if v is None else check_outbound_url(v)

    @model_validator(mode="after")
    def _one_kind(self) -> NotifyTarget:
        if (self.url is None) == (self.command is None):
            raise ValueError("give exactly one of url or command")
        if self.url is None and (self.secret_env is not None or self.secret_file is not None):
            raise ValueError("secret_env / secret_file apply to url targets only")
        _one_source(self.secret_env, self.secret_file, "secret_env", "secret_file")
        return self

    def secret(self) -> bytes | None:
        """The signing key, read now (None: unsigned). The message never holds the secret."""
        if self.secret_env is None and self.secret_file is None:
            return None
        try:
            return _read_secret(f"notify target {self.label()}", self.secret_env,
                                self.secret_file).encode()
        except SecretMissing as e:
            raise TokenMissing(str(e)) from None

    def label(self) -> str:
        """How logs name the target: the URL without its query, or the program."""
        if self.url is not None:
            p = urlsplit(self.url)
            return f"{p.scheme}://{p.netloc}{p.path}"
        assert self.command is not None
        return self.command[0]


class NotificationSettings(_Strict):
    """Delivery of `notify` events (the targets themselves are the `notify` list)."""

    # post_late: a post published, or deferred, this long after its time
    late_after_s: Annotated[float, Field(gt=0)] = 300.0
    retry_base_s: Annotated[float, Field(gt=0)] = 30.0
    retry_cap_s: Annotated[float, Field(gt=0)] = 3600.0
    give_up_after_s: Annotated[float, Field(gt=0)] = 2 * 86400.0
    # how often the daemon looks for new events and deliveries that are due
    check_s: Annotated[float, Field(gt=0)] = 5.0


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
    engagement: EngagementSettings = EngagementSettings()
    webhooks: WebhookSettings = WebhookSettings()
    rules: list[RuleSettings] = []
    secrets: SecretsSettings = SecretsSettings()
    tokens: TokenSettings = TokenSettings()
    metrics: MetricsSettings = MetricsSettings()
    notify: list[NotifyTarget] = []
    notifications: NotificationSettings = NotificationSettings()
    log_level: str = "INFO"
    log_format: Literal["text", "json"] = "text"

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
        ids = [a.ig_user_id for a in self.accounts]
        twice = sorted({a.name for a in self.accounts if ids.count(a.ig_user_id) > 1})
        if twice:  # one quota and one usage budget, counted twice over: limits would not hold
            raise ValueError(f"accounts {', '.join(twice)} have the same ig_user_id; give each account once")
        rule_names = [r.name for r in self.rules]
        dupes = sorted({n for n in rule_names if rule_names.count(n) > 1})
        if dupes:
            raise ValueError(f"rule names must be unique; repeated: {', '.join(dupes)}")
        for rule in self.rules:
            if rule.account is not None and self.account(rule.account) is None:
                raise ValueError(f"rule {rule.name}: account {rule.account!r} is not configured")
        return self

    def account(self, name: str) -> AccountSettings | None:
        return next((a for a in self.accounts if a.name == name), None)

    def skip_check(self) -> LeadSettings | None:
        """For enqueue: with the media check off, the lead times (a new post is planned for
        its staging time at once); else None (the check is its first step)."""
        return None if self.preflight.enabled else self.staging.lead_s


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
    for target in settings.notify:
        if target.command is not None and shutil.which(target.command[0]) is None:
            found.append(f"notify target {target.label()}: no program {target.command[0]!r} to run "
                         "(an absolute path, or one on PATH); its notifications fail until there is")
    hooks = settings.webhooks
    for what, read, configured in (
            ("verify token", hooks.verify_token, hooks.verify_token_env or hooks.verify_token_file),
            ("app secret", hooks.app_secret, hooks.app_secret_env or hooks.app_secret_file)):
        if not configured:
            continue
        try:
            short = len(read()) < MIN_GOOD_SECRET_CHARS
        except SecretMissing as e:
            found.append(str(e))
            continue
        if short:
            found.append(f"webhooks {what} is shorter than {MIN_GOOD_SECRET_CHARS} characters: easy to "
                         "guess, and cut from every log line (a word like it in a message would be too); "
                         "use e.g. the output of `openssl rand -hex 16`")
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
    """The configuration file, validated. Every problem names the file and the key path, and
    quotes nothing of a file that is not a configuration (a mistyped path, a link to another
    program's file of secrets)."""
    def refuse(message: str) -> InvalidInput:
        return InvalidInput([Problem(str(path), message)])
    try:
        raw = read_small_file(path, MAX_CONFIG_BYTES + 1)
    except OSError as e:
        raise refuse(f"cannot read the configuration: {e.strerror}") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise refuse(f"the configuration is larger than {MAX_CONFIG_BYTES // 1024} KiB; is it the right file?")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise refuse(f"the configuration is not UTF-8 text (byte {e.start + 1})") from None
    loader: _ConfigLoader | None = None
    try:
        loader = _ConfigLoader(text)  # its reader checks every character here already
        node = loader.get_single_node()
        duplicates = duplicate_keys(node) if node is not None else []
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as e:
        raise refuse(yaml_error_text(e, text)) from None  # where, never the parser's snippet
    except RecursionError:
        raise refuse("not valid YAML: nested too deeply") from None
    except (ValueError, TypeError, OverflowError) as e:  # a constructor PyYAML did not guard (2027-13-45)
        raise refuse(f"not valid YAML: a value cannot be read ({type(e).__name__})") from None
    finally:
        if loader is not None:
            loader.dispose()
    if isinstance(data, dict) and (foreign := foreign_keys(data, tuple(Settings.model_fields))) is not None:
        raise refuse(foreign)
    if duplicates:
        raise InvalidInput([Problem(str(path), written_twice(*d)) for d in duplicates])
    return settings_from_dict(data, str(path))


class _ConfigLoader(yaml.SafeLoader):
    """SafeLoader that keeps mapping keys as written: YAML 1.1 turns a bare `on`, `off`,
    `yes` or `no` key into a boolean, but every key in this file is a name (rules use `on:`).
    Values keep their YAML meaning (`enabled: yes` is still true)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag == "tag:yaml.org,2002:bool":
                key_node.tag = "tag:yaml.org,2002:str"
        return super().construct_mapping(node, deep=deep)
