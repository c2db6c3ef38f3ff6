"""initial schema: accounts, app_state, posts, post_media, post_events, api_calls

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("ig_user_id", sa.String(40), nullable=False),
        sa.Column("paused_until", sa.DateTime()),
        sa.Column("pause_reason", sa.Text()),
        sa.Column("needs_reauth", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("reauth_reason", sa.Text()),
        sa.Column("quota_total", sa.Integer()),
        sa.Column("quota_duration_s", sa.Integer()),
        sa.Column("quota_usage", sa.Integer()),
        sa.Column("quota_checked_at", sa.DateTime()),
        sa.Column("usage_app_pct", sa.Integer()),
        sa.Column("usage_buc_pct", sa.Integer()),
        sa.Column("usage_regain_s", sa.Float()),
        sa.Column("usage_at", sa.DateTime()),
        sa.Column("updated_at", sa.DateTime()),
    )
    op.create_table(
        "app_state",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("until", sa.DateTime()),
        sa.Column("reason", sa.Text()),
        sa.Column("updated_at", sa.DateTime()),
    )
    op.create_table(
        "posts",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(128), nullable=False),
        sa.Column("account", sa.String(100), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("spec_hash", sa.String(64), nullable=False),
        sa.Column("due_at", sa.DateTime(), nullable=False),
        sa.Column("asap", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text()),
        sa.Column("preflight", sa.String(16)),
        sa.Column("next_action_at", sa.DateTime(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("lease_owner", sa.String(200)),
        sa.Column("lease_until", sa.DateTime()),
        sa.Column("lease_token", sa.String(64)),
        sa.Column("container_id", sa.String(64)),
        sa.Column("container_created_at", sa.DateTime()),
        sa.Column("publish_started_at", sa.DateTime()),
        sa.Column("media_id", sa.String(64)),
        sa.Column("permalink", sa.Text()),
        sa.Column("published_at", sa.DateTime()),
        sa.Column("lateness_s", sa.Float()),
        sa.Column("followup_pending", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("comment_state", sa.String(16)),
        sa.Column("comment_id", sa.String(64)),
        sa.Column("comment_error", sa.Text()),
        sa.Column("source_file", sa.Text()),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("key", name="uq_posts_key"),
    )
    op.create_index("ix_posts_state_next", "posts", ["state", "next_action_at"])
    op.create_index("ix_posts_account_published", "posts", ["account", "published_at"])
    op.create_table(
        "post_media",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column(
            "post_id",
            sa.Integer(),
            sa.ForeignKey("posts.id", ondelete="CASCADE", name="fk_post_media_post_id_posts"),
            nullable=False,
        ),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("media_kind", sa.String(8), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("container_id", sa.String(64)),
        sa.Column("container_created_at", sa.DateTime()),
        sa.Column("status_code", sa.String(16)),
        sa.Column("status_checked_at", sa.DateTime()),
        sa.Column("error", sa.Text()),
    )
    op.create_index("ix_post_media_post", "post_media", ["post_id", "position"], unique=True)
    op.create_table(
        "post_events",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column(
            "post_id",
            sa.Integer(),
            sa.ForeignKey("posts.id", ondelete="CASCADE", name="fk_post_events_post_id_posts"),
            nullable=False,
        ),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("from_state", sa.String(16)),
        sa.Column("to_state", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text()),
        sa.Column("actor", sa.String(200)),
    )
    op.create_index("ix_post_events_post", "post_events", ["post_id", "at"])
    op.create_table(
        "api_calls",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("account", sa.String(100)),
        sa.Column("post_id", sa.Integer()),
        sa.Column("method", sa.String(8), nullable=False),
        sa.Column("endpoint", sa.String(120), nullable=False),
        sa.Column("path", sa.Text()),
        sa.Column("http_status", sa.Integer()),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("error_code", sa.Integer()),
        sa.Column("error_subcode", sa.Integer()),
        sa.Column("error_message", sa.Text()),
        sa.Column("fbtrace_id", sa.String(64)),
        sa.Column("duration_ms", sa.Float()),
        sa.Column("app_call_count", sa.Integer()),
        sa.Column("app_total_cputime", sa.Integer()),
        sa.Column("app_total_time", sa.Integer()),
        sa.Column("buc_call_count", sa.Integer()),
        sa.Column("buc_total_cputime", sa.Integer()),
        sa.Column("buc_total_time", sa.Integer()),
        sa.Column("buc_regain_minutes", sa.Integer()),
    )
    op.create_index("ix_api_calls_account_at", "api_calls", ["account", "at"])
    op.create_index("ix_api_calls_post", "api_calls", ["post_id"])


def downgrade() -> None:
    for table in ("api_calls", "post_events", "post_media", "posts", "app_state", "accounts"):
        op.drop_table(table)
