"""Tables. Plain names, because people read history straight from the database (README).

Every timestamp is a naive UTC datetime (TIMESTAMP WITHOUT TIME ZONE on PostgreSQL; ISO text on
SQLite, which sorts correctly). Migrations in migrations/versions mirror these definitions.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    text,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_name)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

accounts = Table(
    "accounts",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("ig_user_id", String(40), nullable=False),
    # throttling: no call goes to the account before paused_until
    Column("paused_until", DateTime),
    Column("pause_reason", Text),
    # auth failures (code 190 …): posts wait until the token works again
    Column("needs_reauth", Boolean, nullable=False, default=False),
    Column("reauth_reason", Text),
    # content_publishing_limit, as last read from the API
    Column("quota_total", Integer),
    Column("quota_duration_s", Integer),
    Column("quota_usage", Integer),
    Column("quota_checked_at", DateTime),
    # latest usage-header figures (percent); the time series is in api_calls
    Column("usage_app_pct", Integer),
    Column("usage_buc_pct", Integer),
    Column("usage_regain_s", Float),
    Column("usage_at", DateTime),
    Column("updated_at", DateTime),
)

# app-wide facts shared by every daemon (e.g. an app-level throttle pause)
app_state = Table(
    "app_state",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("until", DateTime),
    Column("reason", Text),
    Column("updated_at", DateTime),
)

# The claim's two lanes, as SQL text: a partial index is used only for a query whose WHERE
# holds its predicate word for word (SQLite) or provably (PostgreSQL, which cannot prove it
# from bound parameters), so the index and the claim share these strings. Publishing work
# (due posts) is claimed before everything else; store/claims.py checks that the lanes
# cover every active state.
LANE_PUBLISHING_STATES = ("ready", "deferred", "publishing", "verifying")
LANE_OTHER_STATES = ("planned", "staging", "waiting")
LANE_PUBLISHING = "state IN ('ready', 'deferred', 'publishing', 'verifying')"
LANE_OTHER = "(state IN ('planned', 'staging', 'waiting') OR (state = 'published' AND followup_pending))"
LEASED = "lease_until IS NOT NULL"

posts = Table(
    "posts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key", String(128), nullable=False, unique=True),
    Column("account", String(100), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("spec", JSON, nullable=False),
    Column("spec_hash", String(64), nullable=False),
    Column("due_at", DateTime, nullable=False),
    Column("asap", Boolean, nullable=False, default=False),
    Column("state", String(16), nullable=False),
    Column("reason", Text),
    # media preflight before staging: null = not yet, "ok", "warnings", "skipped"
    Column("preflight", String(16)),
    Column("next_action_at", DateTime, nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("lease_owner", String(200)),
    Column("lease_until", DateTime),
    Column("lease_token", String(64)),
    Column("container_id", String(64)),
    Column("container_created_at", DateTime),
    Column("publish_started_at", DateTime),
    Column("media_id", String(64)),
    Column("permalink", Text),
    Column("published_at", DateTime),
    Column("lateness_s", Float),
    # why a post that became ready after its time was late (e.g. "the video was still
    # processing at its time"), shown when it is published late
    Column("late_cause", Text),
    # what the post waits for besides its time (lifecycle.Hold); cleared when `reason` changes
    Column("hold", String(24)),
    # after publish: permalink lookup and first comment still to do (claimable while true)
    Column("followup_pending", Boolean, nullable=False, default=False),
    Column("comment_state", String(16)),
    Column("comment_id", String(64)),
    Column("comment_error", Text),
    Column("source_file", Text),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    Index("ix_posts_state_next", "state", "next_action_at"),
    # one index per claim lane, in next_action_at order: a claim reads the rows it takes
    Index("ix_posts_claim_publishing", "next_action_at",
          sqlite_where=text(LANE_PUBLISHING), postgresql_where=text(LANE_PUBLISHING)),
    Index("ix_posts_claim_other", "next_action_at",
          sqlite_where=text(LANE_OTHER), postgresql_where=text(LANE_OTHER)),
    # the earliest lease to run out (a wake-up time), without reading every post
    Index("ix_posts_lease", "lease_until", sqlite_where=text(LEASED), postgresql_where=text(LEASED)),
    Index("ix_posts_account_published", "account", "published_at"),
)

post_media = Table(
    "post_media",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("post_id", Integer, ForeignKey("posts.id", ondelete="CASCADE"), nullable=False),
    Column("position", Integer, nullable=False),  # 0 for a single media, 1..n carousel items
    Column("media_kind", String(8), nullable=False),  # image | video
    Column("source", Text, nullable=False),
    Column("container_id", String(64)),
    Column("container_created_at", DateTime),
    Column("status_code", String(16)),
    Column("status_checked_at", DateTime),
    Column("error", Text),
    Index("ix_post_media_post", "post_id", "position", unique=True),
)

post_events = Table(
    "post_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("post_id", Integer, ForeignKey("posts.id", ondelete="CASCADE"), nullable=False),
    Column("at", DateTime, nullable=False),
    Column("from_state", String(16)),
    Column("to_state", String(16), nullable=False),
    Column("reason", Text),
    Column("actor", String(200)),
    Index("ix_post_events_post", "post_id", "at"),
)

api_calls = Table(
    "api_calls",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", DateTime, nullable=False),
    Column("account", String(100)),
    Column("post_id", Integer),
    Column("method", String(8), nullable=False),
    Column("endpoint", String(120), nullable=False),
    Column("path", Text),
    Column("http_status", Integer),
    Column("outcome", String(16), nullable=False),
    Column("error_code", Integer),
    Column("error_subcode", Integer),
    Column("error_message", Text),
    Column("fbtrace_id", String(64)),
    Column("duration_ms", Float),
    Column("app_call_count", Integer),
    Column("app_total_cputime", Integer),
    Column("app_total_time", Integer),
    Column("buc_call_count", Integer),
    Column("buc_total_cputime", Integer),
    Column("buc_total_time", Integer),
    Column("buc_regain_minutes", Integer),
    Index("ix_api_calls_account_at", "account", "at"),
    Index("ix_api_calls_post", "post_id"),
)
