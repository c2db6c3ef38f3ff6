"""The emulator's in-memory model of one Instagram app: accounts, containers, media, comments,
publishing quota, usage accounting, fault settings and the request log.

Plain Python with an injectable clock. `EmulatorState` composes the model core (core.py),
the publishing and comment operations (publishing.py, comments.py) and adds here the
behaviour switches, the request-pipeline helpers the HTTP layer calls, and read-only views
for tests. The HTTP server mutates the state from its own thread while tests read it from
theirs, so every public method takes `self.lock` (re-entrant; the HTTP layer also holds it
around an operation and the rendering of its answer).
"""

from __future__ import annotations

import copy
import json
from typing import Any

from .comments import CommentOps
from .errors import GraphError
from .faults import (
    ENDPOINTS,
    FAULT_KINDS,
    TRANSIENT_CODES,
    FaultInjection,
    FaultRoll,
    FaultSettings,
    Injection,
    roll,
)
from .messaging import MessagingOps
from .processing import MediaRule
from .publishing import PublishingOps
from .subscriptions import SubscriptionOps
from .usage import APP_USAGE_SHAPES, Verdict

# Settings that `configure` sets as plain attributes, with their types.
_PLAIN_SETTINGS: dict[str, type] = {
    "container_ttl_s": float,
    "stories_count_against_quota": bool,
    "request_log_limit": int,
    "clock_offset_s": float,
}


class EmulatorState(PublishingOps, CommentOps, MessagingOps, SubscriptionOps):
    """Everything the fake Graph API knows, and the switches that change its behaviour.

    `EmulatorState(clock=time.time, seed=0)`; `clock_offset_s` (settable) and `advance()`
    shift the emulator's notion of now, e.g. 86400 s to expire containers.
    """

    def configure(self, **settings: Any) -> None:
        """Set fault switches and plain settings by name (see `apply_config` for actions)."""
        self.apply_config(settings)

    def add_media_rule(
        self,
        substring: str,
        processing_s: float | None = None,
        fail_subcode: int | None = None,
        fail_message: str | None = None,
        fail_code: int | None = None,
        times: int | None = None,
    ) -> None:
        """Media whose URL contains `substring` takes `processing_s` and/or ends in ERROR
        (the first `times` containers only, when given)."""
        with self.lock:
            self._media_rules.append(
                MediaRule(substring, processing_s, fail_subcode, fail_message, fail_code, times)
            )

    def clear_media_rules(self) -> None:
        with self.lock:
            self._media_rules.clear()

    def inject(
        self,
        endpoint: str,
        code: int,
        subcode: int | None = None,
        http_status: int = 400,
        message: str | None = None,
        is_transient: bool | None = None,
        count: int = 1,
        account: str | None = None,
        *,
        method: str | None = None,
        after: bool = False,
        type: str | None = None,
    ) -> None:
        """The next `count` requests to `endpoint` (for `account`, if given) get this error.

        With `after=True` the request is carried out first and only its answer is replaced
        (e.g. a comment that is created although the API answers 20/1772107).
        `is_transient=None` sets it as Meta does: true for 1, 2 and the throttling codes.
        """
        if endpoint not in ENDPOINTS:
            raise ValueError(f"unknown endpoint {endpoint!r}; one of {', '.join(ENDPOINTS)}")
        with self.lock:
            self._injections.append(
                Injection(
                    endpoint=endpoint,
                    code=int(code),
                    subcode=None if subcode is None else int(subcode),
                    http_status=int(http_status),
                    message=message,
                    is_transient=(
                        int(code) in TRANSIENT_CODES if is_transient is None else is_transient
                    ),
                    count=int(count),
                    account=None if account is None else str(account),
                    method=method,
                    after=bool(after),
                    type=type,
                )
            )

    def clear_injections(self) -> None:
        with self.lock:
            self._injections.clear()
            self._fault_injections.clear()

    def inject_fault(
        self, endpoint: str, kind: str, count: int = 1, account: str | None = None
    ) -> None:
        """The next `count` requests to `endpoint` (for `account`, if given) get a transport
        fault: "drop" (closed before any work), "drop_after" (done, answer lost) or "late"
        (media_publish only: done, answered after `late_publish_delay_s`)."""
        if endpoint not in ENDPOINTS:
            raise ValueError(f"unknown endpoint {endpoint!r}; one of {', '.join(ENDPOINTS)}")
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; one of {', '.join(FAULT_KINDS)}")
        if kind == "late" and endpoint != "media_publish":
            raise ValueError("a late answer can only be injected on media_publish")
        with self.lock:
            self._fault_injections.append(
                FaultInjection(
                    endpoint, kind, int(count), None if account is None else str(account)
                )
            )

    # usage budgets and forcing
    def set_usage_budget(self, ig_user_id: str | None = None, calls_per_hour: int = 4800) -> None:
        """BUC budget per rolling hour for one account (None: the default for all)."""
        with self.lock:
            self.usage.set_budget(None if ig_user_id is None else str(ig_user_id), calls_per_hour)

    def set_app_usage_budget(self, calls_per_hour: int) -> None:
        """App-wide budget per rolling hour (X-App-Usage; code 4 at 100 %)."""
        with self.lock:
            self.usage.set_app_budget(calls_per_hour)

    def force_usage(self, ig_user_id: str, pct: int | None, regain_minutes: int = 0) -> None:
        """Report `pct` for the account; at >= 100 it is throttled (80002) for regain_minutes
        (0: until cleared). `pct=None` clears."""
        with self.lock:
            self.usage.force(str(ig_user_id), pct, regain_minutes, self.now())

    def force_app_usage(self, pct: int | None, regain_minutes: int = 0) -> None:
        with self.lock:
            self.usage.force(None, pct, regain_minutes, self.now())

    def force_throttle(self, ig_user_id: str, duration_s: float) -> None:
        """Throttle the account (80002) for `duration_s` on the emulator's clock."""
        with self.lock:
            self.usage.throttle(str(ig_user_id), duration_s, self.now())

    def force_app_throttle(self, duration_s: float) -> None:
        """Throttle the whole app (code 4) for `duration_s`."""
        with self.lock:
            self.usage.throttle(None, duration_s, self.now())

    def apply_config(self, cfg: dict[str, Any]) -> dict[str, Any]:
        """Apply settings and actions from a dict (the body of POST /_emulator/config)."""
        with self.lock:
            for key, value in cfg.items():
                self._apply_one(key, value)
            return self.config_snapshot()

    def _apply_one(self, key: str, value: Any) -> None:
        def items(v: Any) -> list[dict[str, Any]]:
            return list(v) if isinstance(v, list) else [v]

        if key in FaultSettings.__dataclass_fields__:
            self.faults.update({key: value})
        elif key in _PLAIN_SETTINGS:
            setattr(self, key, _PLAIN_SETTINGS[key](value))
        elif key == "default_processing_s":
            self.default_processing_s.update({k: float(v) for k, v in dict(value).items()})
        elif key == "comments_page_cap":
            self.comments_page_cap = None if value is None else int(value)
        elif key == "app_usage_shape":
            if value not in APP_USAGE_SHAPES:
                raise ValueError(f"app_usage_shape must be one of {', '.join(APP_USAGE_SHAPES)}")
            self.app_usage_shape = value
        elif key == "containers_per_day":
            self.containers_per_day = None if value is None else int(value)
        elif key == "seed":
            self.seed(int(value))
        elif key == "usage_budget":
            for item in items(value):
                self.set_usage_budget(item.get("ig_user_id"), int(item["calls_per_hour"]))
        elif key == "app_usage_budget":
            self.set_app_usage_budget(int(value))
        elif key == "force_usage":
            for item in items(value):
                self.force_usage(item["ig_user_id"], item.get("pct"), item.get("regain_minutes", 0))
        elif key == "force_app_usage":
            item = value if isinstance(value, dict) else {"pct": value}
            self.force_app_usage(item.get("pct"), item.get("regain_minutes", 0))
        elif key == "force_throttle":
            for item in items(value):
                self.force_throttle(item["ig_user_id"], float(item["duration_s"]))
        elif key == "force_app_throttle":
            item = value if isinstance(value, dict) else {"duration_s": value}
            self.force_app_throttle(float(item["duration_s"]))
        elif key == "media_rules":
            for item in items(value):
                self.add_media_rule(**item)
        elif key == "clear_media_rules":
            if value:
                self.clear_media_rules()
        elif key == "quota":
            for item in items(value):
                self.set_quota(**item)
        elif key == "expire_token":
            for account in value if isinstance(value, list) else [value]:
                self.expire_token(account)
        elif key == "set_token":
            for item in items(value):
                self.set_token(
                    item["ig_user_id"], item.get("token"), item.get("age_s"),
                    item.get("lifetime_s"),
                )
        else:
            raise ValueError(f"unknown setting {key!r}")

    def config_snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {
                "now": self.now(),
                "clock_offset_s": self.clock_offset_s,
                "default_processing_s": dict(self.default_processing_s),
                "container_ttl_s": self.container_ttl_s,
                "containers_per_day": self.containers_per_day,
                "comments_page_cap": self.comments_page_cap,
                "app_usage_shape": self.app_usage_shape,
                "stories_count_against_quota": self.stories_count_against_quota,
                "request_log_limit": self.request_log_limit,
                "faults": self.faults.snapshot(),
                "media_rules": [r.as_dict() for r in self._media_rules],
                "injections": [i.snapshot() for i in self._injections if i.used < i.count],
                "fault_injections": [i.snapshot() for i in self._fault_injections],
                "usage": self.usage.snapshot(self.now()),
            }

    # ------------------------------------------------------------------ request pipeline
    def roll_faults(self, endpoint: str, method: str, account: str | None = None) -> FaultRoll:
        with self.lock:
            dice = roll(self.faults, self._rng, endpoint, method)
            for inj in self._fault_injections:
                if inj.matches(endpoint, account):
                    inj.used += 1
                    self._fault_injections = [i for i in self._fault_injections if i.used < i.count]
                    return inj.apply(dice)
            return dice

    def take_injection(
        self, endpoint: str, account: str | None, method: str, *, after: bool
    ) -> GraphError | None:
        with self.lock:
            for inj in self._injections:
                if inj.matches(endpoint, account, method, after):
                    inj.used += 1
                    error = inj.error()
                    self._injections = [i for i in self._injections if i.used < i.count]
                    return error
            return None

    def record_call(self, account: str | None) -> Verdict:
        with self.lock:
            return self.usage.record(account, self.now())

    def throttle_error(self, verdict: Verdict) -> GraphError:
        if verdict == "app":
            return GraphError(4, "(#4) Application request limit reached", is_transient=True)
        return GraphError(
            80002,
            "There have been too many calls to this Instagram account. Wait a bit and try "
            "again. For more info, please refer to "
            "https://developers.facebook.com/docs/graph-api/overview/rate-limiting.",
            is_transient=True,
        )

    def usage_headers(self, account: str | None) -> dict[str, str]:
        with self.lock:
            now = self.now()
            headers = {
                "X-App-Usage": json.dumps(
                    self.usage.app_figures(now).app_header(self.app_usage_shape),
                    separators=(",", ":"),
                )
            }
            if account is not None:
                entry = self.usage.account_figures(account, now).buc_entry()
                headers["X-Business-Use-Case-Usage"] = json.dumps(
                    {account: [entry]}, separators=(",", ":")
                )
            return headers

    def usage_figures(self, ig_user_id: str) -> dict[str, Any]:
        """The account's current BUC entry, as the header would report it."""
        with self.lock:
            return self.usage.account_figures(str(ig_user_id), self.now()).buc_entry()

    def log_request(self, entry: dict[str, Any]) -> None:
        with self.lock:
            self._log.append(entry)
            overflow = len(self._log) - self.request_log_limit
            if overflow > 0:
                del self._log[:overflow]

    # ------------------------------------------------------------------ views for tests
    @property
    def requests(self) -> list[dict[str, Any]]:
        """The request log (copies), oldest first; tokens are never recorded."""
        with self.lock:
            return copy.deepcopy(self._log)

    @property
    def containers(self) -> dict[str, dict[str, Any]]:
        with self.lock:
            now = self.now()
            return {k: c.snapshot(now, self.container_ttl_s) for k, c in self._containers.items()}

    def published_media(self, ig_user_id: str | None = None) -> list[dict[str, Any]]:
        """Published top-level media (carousel children inside), in publishing order."""
        with self.lock:
            return [
                m.snapshot()
                for m in self._media.values()
                if m.is_top_level and (ig_user_id is None or m.account == str(ig_user_id))
            ]

    def media(self, media_id: str) -> dict[str, Any]:
        with self.lock:
            return self.get_media(media_id).snapshot()

    def comments(self, media_id: str | None = None) -> list[dict[str, Any]]:
        """All comments and replies (optionally of one media), oldest first."""
        with self.lock:
            return [
                c.snapshot()
                for c in self._comments.values()
                if media_id is None or c.media_id == media_id
            ]
