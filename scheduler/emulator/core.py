"""The core of the emulator's model: its clock, its objects, accounts, tokens and lookups.

`EmulatorState` (state.py) builds on this with the publishing and comment operations and
the behaviour switches. Every public method takes `self.lock` (re-entrant): the HTTP server
mutates the model from its own thread while tests read it from theirs.
"""

from __future__ import annotations

import itertools
import random
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any

from .errors import GraphError, invalid_parameter, object_missing
from .faults import FaultInjection, FaultSettings, Injection
from .models import (
    DEFAULT_ACCOUNT_ID,
    GENERATED_PREFIXES,
    Account,
    Comment,
    Container,
    Media,
)
from .processing import MediaRule
from .usage import UsageMeter

DEFAULT_PROCESSING_S = {"image": 0.3, "video": 2.0}
TOKEN_LIFETIME_S = 60 * 86400
TOKEN_MIN_REFRESH_AGE_S = 86400  # Meta: a token must be at least 24 h old to be refreshed
# ids are a kind's base plus a counter that starts at a random offset below the gap
# between two bases (10**13), leaving room for 10**12 ids after the start
ID_OFFSET_MIN, ID_OFFSET_SPAN = 1, 9 * 10**12


class StateCore:
    """Objects and settings of one fake Instagram app, with an injectable clock."""

    def __init__(self, clock: Callable[[], float] = time.time, *, seed: int = 0) -> None:
        self.lock = threading.RLock()
        self._clock = clock
        self._initial_seed = seed
        # Never reset, and from a random start: Meta's ids never repeat, so an emulator
        # restarted on the same port must not hand out ids a daemon has already stored.
        self._ids = itertools.count(ID_OFFSET_MIN + secrets.randbelow(ID_OFFSET_SPAN))
        self._reset_model()

    def _reset_model(self) -> None:
        self.clock_offset_s = 0.0
        self.default_processing_s: dict[str, float] = dict(DEFAULT_PROCESSING_S)
        self.container_ttl_s = 86400.0
        self.containers_per_day: int | None = 400
        self.stories_count_against_quota = True  # UNCONFIRMED in the facts sheet
        self.request_log_limit = 100_000
        self.app_usage_shape = "facebook"  # or "instagram": X-App-Usage as Instagram Login
        self.faults = FaultSettings()
        self.usage = UsageMeter()
        self._rng = random.Random(self._initial_seed)
        self._accounts: dict[str, Account] = {}
        self._containers: dict[str, Container] = {}
        self._media: dict[str, Media] = {}
        self._comments: dict[str, Comment] = {}
        self._media_rules: list[MediaRule] = []
        self._injections: list[Injection] = []
        self._fault_injections: list[FaultInjection] = []
        self._log: list[dict[str, Any]] = []

    # ------------------------------------------------------------------ clock
    def now(self) -> float:
        return self._clock() + self.clock_offset_s

    def advance(self, seconds: float) -> float:
        """Move the emulator's clock forward (e.g. 86400 to expire containers); returns now."""
        with self.lock:
            self.clock_offset_s += seconds
            return self.now()

    def seed(self, n: int) -> None:
        """Reseed the fault RNG so a run's faults can be replayed."""
        with self.lock:
            self._initial_seed = n
            self._rng = random.Random(n)

    def reset(self) -> None:
        """Forget everything (accounts, objects, log, faults, usage, clock offset)."""
        with self.lock:
            self._reset_model()

    # ------------------------------------------------------------------ accounts and tokens
    def add_account(
        self,
        ig_user_id: str | int,
        username: str | None = None,
        token: str | None = None,
        quota_total: int = 50,
        quota_duration: int = 86400,
        **profile: Any,
    ) -> dict[str, Any]:
        """Create (or update) an account. With `token`, only that token is accepted for it."""
        with self.lock:
            acct = self._account(str(ig_user_id))
            if username is not None:
                acct.username = username
            acct.token = token
            acct.token_expired = False
            acct.token_issued_at = acct.token_expires_at = None
            acct.quota_total = int(quota_total)
            acct.quota_duration = int(quota_duration)
            for key, value in profile.items():
                if key not in Account.__dataclass_fields__ or key.endswith("_times"):
                    raise ValueError(f"unknown account field {key!r}")
                setattr(acct, key, value)
            return acct.snapshot()

    def set_quota(
        self, ig_user_id: str, quota_total: int | None = None, quota_duration: int | None = None
    ) -> None:
        with self.lock:
            acct = self._account(str(ig_user_id))
            if quota_total is not None:
                acct.quota_total = int(quota_total)
            if quota_duration is not None:
                acct.quota_duration = int(quota_duration)

    def expire_token(self, ig_user_id: str) -> None:
        """Every later call for the account gets 190/463 until `set_token` (or a refresh)."""
        with self.lock:
            self._account(str(ig_user_id)).token_expired = True

    def set_token(
        self,
        ig_user_id: str,
        token: str | None,
        age_s: float | None = None,
        lifetime_s: float | None = None,
    ) -> None:
        """Bind a token to the account (None: accept any) and clear an expiry.

        `age_s`: the token was issued that long ago (None: old enough to refresh);
        `lifetime_s`: it expires that long after issue (None: never by itself).
        """
        with self.lock:
            acct = self._account(str(ig_user_id))
            acct.token = token
            acct.token_expired = False
            issued = self.now() - age_s if age_s is not None else None
            acct.token_issued_at = issued
            acct.token_expires_at = (
                (issued if issued is not None else self.now()) + lifetime_s
                if lifetime_s is not None
                else None
            )

    @property
    def accounts(self) -> dict[str, dict[str, Any]]:
        with self.lock:
            return {k: a.snapshot() for k, a in self._accounts.items()}

    def _account(self, ig_user_id: str, create: bool = True) -> Account:
        acct = self._accounts.get(ig_user_id)
        if acct is None:
            if not create:
                raise object_missing(ig_user_id)
            acct = Account(ig_user_id=ig_user_id, username=f"user{ig_user_id}")
            acct.name = f"User {ig_user_id}"
            self._accounts[ig_user_id] = acct
        return acct

    def account_for_token(self, token: str | None) -> Account:
        """`/me`: the account the token is bound to, else the first one (or the default)."""
        with self.lock:
            return self._account(self.token_account_id(token))

    def token_account_id(self, token: str | None) -> str:
        """The id `/me` stands for, without creating the account."""
        with self.lock:
            for acct in self._accounts.values():
                if token and acct.token == token:
                    return acct.ig_user_id
            return next(iter(self._accounts), DEFAULT_ACCOUNT_ID)

    def check_auth(self, account_id: str | None, token: str | None) -> None:
        with self.lock:
            if not token:
                raise GraphError(104, "An access token is required to request this resource.")
            acct = self._accounts.get(account_id) if account_id else None
            if acct is None:
                return
            if acct.token_expires_at is not None and self.now() >= acct.token_expires_at:
                acct.token_expired = True
            if acct.token_expired:
                raise GraphError(
                    190,
                    "Error validating access token: Session has expired. The current time is "
                    f"{int(self.now())}.",
                    463,
                    user_title="Session expired",
                    user_msg="The access token has expired; log in again.",
                )
            if acct.token is not None and token != acct.token:
                raise GraphError(190, "Invalid OAuth access token - Cannot parse access token")

    def refresh_token(self, token: str | None, params: dict[str, str]) -> dict[str, Any]:
        """GET /refresh_access_token: a new 60-day token for the token's account.

        The old token stops working at once. A token younger than 24 h is refused (Meta's
        exact answer for that is not documented: this one is the emulator's choice).
        """
        with self.lock:
            if params.get("grant_type") != "ig_refresh_token":
                raise invalid_parameter("grant_type must be ig_refresh_token")
            acct = self.account_for_token(token)
            self.check_auth(acct.ig_user_id, token)
            issued = acct.token_issued_at
            if issued is not None and self.now() - issued < TOKEN_MIN_REFRESH_AGE_S:
                raise GraphError(
                    100,
                    "The access token is less than 24 hours old and cannot be refreshed yet.",
                )
            acct.token = "IGAA" + secrets.token_hex(24)
            acct.token_issued_at = self.now()
            acct.token_expires_at = self.now() + TOKEN_LIFETIME_S
            return {
                "access_token": acct.token,
                "token_type": "bearer",
                "expires_in": TOKEN_LIFETIME_S,
            }

    # ------------------------------------------------------------------ lookups
    def lookup(self, node_id: str) -> tuple[str, str | None]:
        """What an id names: ("container"|"media"|"comment"|"account"|"missing", owner)."""
        with self.lock:
            if node_id in self._containers:
                return "container", self._containers[node_id].account
            if node_id in self._media:
                return "media", self._media[node_id].account
            if node_id in self._comments:
                media = self._media.get(self._comments[node_id].media_id)
                return "comment", media.account if media else None
            if node_id.isdigit() and not node_id.startswith(GENERATED_PREFIXES):
                return "account", node_id
            return "missing", None

    def missing_kind(self, node_id: str) -> str:
        """For an unknown generated id, the kind of object it would have been."""
        return {"1799": "container", "1800": "media", "1801": "comment"}.get(node_id[:4], "")

    def get_container(self, cid: str, *, fresh_check: bool = False) -> Container:
        with self.lock:
            c = self._containers.get(cid)
            if c is None or (fresh_check and self._too_fresh(c.created_at)):
                raise object_missing(cid)
            return c

    def get_media(self, mid: str, *, fresh_check: bool = False) -> Media:
        with self.lock:
            m = self._media.get(mid)
            if m is None or (fresh_check and self._too_fresh(m.published_at)):
                raise object_missing(mid)
            return m

    def get_comment(self, comment_id: str) -> Comment:
        with self.lock:
            c = self._comments.get(comment_id)
            if c is None:
                raise object_missing(comment_id)
            return c

    def get_account(self, ig_user_id: str) -> Account:
        with self.lock:
            return self._account(ig_user_id)

    def _too_fresh(self, created_at: float) -> bool:
        window = self.faults.new_object_not_found_s
        return window > 0 and self.now() - created_at < window

    def _new_id(self, base: int) -> str:
        return str(base + next(self._ids))
