"""running as a service: account_tokens (refreshed tokens, encrypted), daemons (heartbeats),
notifications (durable, once per occurrence and target)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "account_tokens",
        sa.Column("account", sa.String(100), primary_key=True),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("seeded_fingerprint", sa.String(64), nullable=False),
        sa.Column("seen_at", sa.DateTime(), nullable=False),
        sa.Column("refreshed_token", sa.Text()),
        sa.Column("expires_at", sa.DateTime()),
        sa.Column("refreshed_at", sa.DateTime()),
        sa.Column("last_attempt_at", sa.DateTime()),
        sa.Column("failures", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("not_before", sa.DateTime()),
        sa.Column("last_error", sa.Text()),
        sa.Column("lease_owner", sa.String(200)),
        sa.Column("lease_until", sa.DateTime()),
        sa.Column("version", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "daemons",
        sa.Column("identity", sa.String(200), primary_key=True),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("last_tick_at", sa.DateTime(), nullable=False),
        sa.Column("stopped_at", sa.DateTime()),
    )
    op.create_table(
        "notifications",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("event", sa.String(32), nullable=False),
        sa.Column("occurrence", sa.String(300), nullable=False),
        sa.Column("target_id", sa.String(32), nullable=False),
        sa.Column("account", sa.String(100)),
        sa.Column("key", sa.String(128)),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("next_attempt_at", sa.DateTime(), nullable=False),
        sa.Column("last_error", sa.Text()),
        sa.Column("lease_owner", sa.String(200)),
        sa.Column("lease_until", sa.DateTime()),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("delivered_at", sa.DateTime()),
        sa.UniqueConstraint("occurrence", "target_id", name="uq_notifications_occurrence_target"),
    )
    op.create_index("ix_notifications_state_next", "notifications", ["state", "next_attempt_at"])


def downgrade() -> None:
    op.drop_index("ix_notifications_state_next", "notifications")
    op.drop_table("notifications")
    op.drop_table("daemons")
    op.drop_table("account_tokens")
