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
    UniqueConstraint,
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
# posts whose publish is in flight: the quota's count reads them per account (accounts.py)
FLYING_STATES = ("publishing", "verifying")
FLYING = "state IN (" + ", ".join(f"'{s}'" for s in FLYING_STATES) + ")"  # state IN ('publishing', 'verifying')
HAS_MEDIA_ID = "media_id IS NOT NULL"

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
    # with the one above, the quota's count at every publish reads this account's publishes in
    # the window and in flight only: not its whole history, nor every post in flight
    Index("ix_posts_account_flying", "account", sqlite_where=text(FLYING), postgresql_where=text(FLYING)),
    # the bulk permalink read sets each post by its media id: one entry, not a walk over
    # every published post (media_id = ? implies the predicate on both databases)
    Index("ix_posts_media_id", "media_id", sqlite_where=text(HAS_MEDIA_ID), postgresql_where=text(HAS_MEDIA_ID)),
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

# --- engagement (README "Engagement") ----------------------------------------------------------

# every outbound write (a DM, a private reply, a public reply, a hide, an unhide, a delete)
actions = Table(
    "actions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key", String(200), nullable=False, unique=True),  # idempotency: sent at most once
    Column("account", String(100), nullable=False),
    # message | private_reply | reply | hide | unhide | delete
    Column("kind", String(16), nullable=False),
    Column("target", String(64), nullable=False),  # IGSID (message) or comment id
    Column("payload", JSON, nullable=False),  # what the call needs beyond the target
    Column("state", String(16), nullable=False),
    Column("reason", Text),  # why it waits, is deferred, unknown or failed
    Column("error", Text),  # Meta's error of the last failing call
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_action_at", DateTime, nullable=False),
    Column("lease_owner", String(200)),
    Column("lease_until", DateTime),
    Column("lease_token", String(64)),
    Column("result_id", String(64)),  # message id, reply id
    Column("result", JSON),  # Meta's answer (recipient_id, message_id, success)
    Column("source", String(120), nullable=False),  # cli | api | queue:<file> | rule:<name>
    Column("sent_at", DateTime),  # the last time the call went out (budgets count these)
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    Column("done_at", DateTime),
    Index("ix_actions_state_next", "state", "next_action_at"),
    Index("ix_actions_account_kind_sent", "account", "kind", "sent_at"),
    Index("ix_actions_account_target", "account", "target"),  # one at a time per comment or person
)

action_events = Table(
    "action_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("action_id", Integer, ForeignKey("actions.id", ondelete="CASCADE"), nullable=False),
    Column("at", DateTime, nullable=False),
    Column("from_state", String(16)),
    Column("to_state", String(16), nullable=False),
    Column("reason", Text),
    Column("actor", String(200)),
    Index("ix_action_events_action", "action_id", "at"),
)

# Meta allows one private reply per comment: the first action planned for a comment owns it,
# so a second one is refused before any call
private_replies = Table(
    "private_replies",
    metadata,
    Column("comment_id", String(64), primary_key=True),
    Column("account", String(100), nullable=False),
    Column("action_key", String(200), nullable=False),
    Column("created_at", DateTime, nullable=False),
)

# people's profiles, cached (engagement.profile_ttl_s); every lookup is also in api_calls
profiles = Table(
    "profiles",
    metadata,
    Column("igsid", String(64), primary_key=True),
    Column("account", String(100), nullable=False),  # the account that looked it up
    Column("fields", JSON, nullable=False),  # Meta's answer, every field asked for
    Column("name", Text),
    Column("username", Text),
    Column("profile_pic", Text),
    Column("fetched_at", DateTime, nullable=False),
)

# --- running as a service (README "Running it for months") --------------------------------

# what igsched knows of each account's token; the token itself only when refreshed, and then
# encrypted (Fernet, key from secrets.key_file)
account_tokens = Table(
    "account_tokens",
    metadata,
    Column("account", String(100), primary_key=True),
    Column("source", String(16), nullable=False),  # config | refreshed
    # sha256 of the configured token the row was seeded with: another one there is a new login
    Column("seeded_fingerprint", String(64), nullable=False),
    Column("seen_at", DateTime, nullable=False),  # the token in use: first seen, or issued
    Column("refreshed_token", Text),  # Fernet ciphertext
    Column("expires_at", DateTime),  # known once a refresh has told it
    Column("refreshed_at", DateTime),
    Column("last_attempt_at", DateTime),
    Column("failures", Integer, nullable=False, default=0),
    Column("not_before", DateTime),  # after a "too young" refusal
    Column("last_error", Text),
    Column("lease_owner", String(200)),  # the one daemon refreshing right now
    Column("lease_until", DateTime),
    Column("version", Integer, nullable=False, default=0),  # bumped by every change
    Column("updated_at", DateTime, nullable=False),
)

# each daemon's heartbeat, for `igsched status`
daemons = Table(
    "daemons",
    metadata,
    Column("identity", String(200), primary_key=True),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("started_at", DateTime, nullable=False),
    Column("last_tick_at", DateTime, nullable=False),
    Column("stopped_at", DateTime),
)

# one row per event occurrence and target: durable, and recorded once however many daemons
# notice the occurrence (the unique pair)
notifications = Table(
    "notifications",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("event", String(32), nullable=False),
    Column("occurrence", String(300), nullable=False),
    Column("target_id", String(32), nullable=False),
    Column("account", String(100)),
    Column("key", String(128)),
    Column("body", Text, nullable=False),  # the exact JSON sent and signed
    Column("state", String(16), nullable=False),  # pending | delivered | gave_up
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", DateTime, nullable=False),
    Column("last_error", Text),
    Column("lease_owner", String(200)),
    Column("lease_until", DateTime),
    Column("created_at", DateTime, nullable=False),
    Column("delivered_at", DateTime),
    UniqueConstraint("occurrence", "target_id", name="uq_notifications_occurrence_target"),
    Index("ix_notifications_state_next", "state", "next_attempt_at"),
)
