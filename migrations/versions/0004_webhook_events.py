"""events, waiting_actions, conversations, forward_deliveries: webhook events stored once,
rule actions waiting for others, the person's last inbound message per account, the
forwarding of events to other services

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

ID = 512


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("dedup_key", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("account", sa.String(100)),
        sa.Column("ig_account_id", sa.String(ID), nullable=False),
        sa.Column("sender_id", sa.String(ID)),
        sa.Column("recipient_id", sa.String(ID)),
        sa.Column("text", sa.Text()),
        sa.Column("payload", sa.Text()),
        sa.Column("media_id", sa.String(ID)),
        sa.Column("comment_id", sa.String(ID)),
        sa.Column("parent_id", sa.String(ID)),
        sa.Column("username", sa.Text()),
        sa.Column("is_echo", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("attachments", sa.JSON()),
        sa.Column("occurred_at", sa.DateTime()),
        sa.Column("raw", sa.Text(), nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.Column("handled_at", sa.DateTime()),
        sa.Column("rule_actions", sa.Integer()),
        sa.UniqueConstraint("dedup_key", name="uq_events_dedup_key"),
    )
    op.create_index("ix_events_handled", "events", ["handled_at", "id"])
    op.create_index("ix_events_received", "events", ["received_at"])
    op.create_index("ix_events_account", "events", ["ig_account_id", "id"])
    op.create_table(
        "waiting_actions",
        sa.Column(
            "event_id",
            sa.Integer(),
            sa.ForeignKey("events.id", ondelete="CASCADE", name="fk_waiting_actions_event_id_events"),
            primary_key=True,
        ),
        sa.Column("after", sa.JSON(), nullable=False),
        sa.Column("actions", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "conversations",
        sa.Column("ig_account_id", sa.String(ID), nullable=False),
        sa.Column("person_id", sa.String(ID), nullable=False),
        sa.Column("account", sa.String(100)),
        sa.Column("last_inbound_at", sa.DateTime(), nullable=False),
        sa.Column("last_event_id", sa.Integer()),
        sa.PrimaryKeyConstraint("ig_account_id", "person_id", name="pk_conversations"),
    )
    op.create_table(
        "forward_deliveries",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column(
            "event_id",
            sa.Integer(),
            sa.ForeignKey("events.id", ondelete="CASCADE", name="fk_forward_deliveries_event_id_events"),
            nullable=False,
        ),
        sa.Column("target", sa.String(64), nullable=False),
        sa.Column("target_host", sa.Text(), nullable=False),
        sa.Column("ig_account_id", sa.String(ID), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("next_attempt_at", sa.DateTime(), nullable=False),
        sa.Column("delivered_at", sa.DateTime()),
        sa.Column("last_status", sa.Integer()),
        sa.Column("last_error", sa.Text()),
        sa.Column("lease_owner", sa.String(200)),
        sa.Column("lease_until", sa.DateTime()),
        sa.Column("lease_token", sa.String(64)),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("event_id", "target", name="uq_forward_deliveries_event_id"),
    )
    op.create_index(
        "ix_forward_deliveries_pending", "forward_deliveries",
        ["target", "ig_account_id", "delivered_at", "event_id"],
    )


def downgrade() -> None:
    for table in ("forward_deliveries", "conversations", "waiting_actions", "events"):
        op.drop_table(table)
