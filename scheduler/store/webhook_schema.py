"""Tables of the webhook side (README "Webhooks and rules"): the events Meta sent, when each
person last wrote to an account, and the forwarding of events to other services.

Same conventions as schema.py (plain names, naive UTC times); migration 0004 mirrors them.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from scheduler.store.schema import metadata

ID = 512  # Meta's ids are digits; the receiver refuses anything longer than this

# one row per notification item, however often Meta delivered it (dedup_key is unique)
events = Table(
    "events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("dedup_key", Text, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("account", String(100)),  # the configured account's name when one matches
    Column("ig_account_id", String(ID), nullable=False),
    Column("sender_id", String(ID)),
    Column("recipient_id", String(ID)),
    Column("text", Text),
    Column("payload", Text),
    Column("media_id", String(ID)),
    Column("comment_id", String(ID)),
    Column("parent_id", String(ID)),
    Column("username", Text),
    Column("is_echo", Boolean, nullable=False, default=False),
    Column("attachments", JSON(none_as_null=True)),
    Column("occurred_at", DateTime),  # Meta's timestamp of the item
    Column("raw", Text, nullable=False),  # the item as received (JSON, keys sorted)
    Column("received_at", DateTime, nullable=False),
    Column("handled_at", DateTime),  # rules applied (their actions are in `actions`)
    Column("rule_actions", Integer),  # how many actions the rules planned for it
    UniqueConstraint("dedup_key", name="uq_events_dedup_key"),
    Index("ix_events_handled", "handled_at", "id"),
    Index("ix_events_received", "received_at"),
    Index("ix_events_account", "ig_account_id", "id"),
)

# rule actions that wait for an event's other actions to finish (a hide: Meta refuses a reply
# to a hidden comment); a row lives only while it waits
waiting_actions = Table(
    "waiting_actions",
    metadata,
    Column("event_id", Integer, ForeignKey("events.id", ondelete="CASCADE"), primary_key=True),
    Column("after", JSON, nullable=False),  # keys of the actions to wait for
    Column("actions", JSON, nullable=False),  # the actions to plan then
    Column("created_at", DateTime, nullable=False),
)

# when a person last wrote to an account (a message, a quick reply or a postback; never an
# echo), so a DM can be checked against Meta's 24-hour window before it is sent
conversations = Table(
    "conversations",
    metadata,
    Column("ig_account_id", String(ID), primary_key=True),
    Column("person_id", String(ID), primary_key=True),
    Column("account", String(100)),
    Column("last_inbound_at", DateTime, nullable=False),
    Column("last_event_id", Integer),
)

# one row per stored event and forwarding target: delivered at least once, in order per account
forward_deliveries = Table(
    "forward_deliveries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("event_id", Integer, ForeignKey("events.id", ondelete="CASCADE"), nullable=False),
    Column("target", String(64), nullable=False),  # a digest of the URL (its path may be secret)
    Column("target_host", Text, nullable=False),  # scheme://host, for people
    Column("ig_account_id", String(ID), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", DateTime, nullable=False),
    Column("delivered_at", DateTime),
    Column("last_status", Integer),
    Column("last_error", Text),
    Column("lease_owner", String(200)),
    Column("lease_until", DateTime),
    Column("lease_token", String(64)),
    Column("created_at", DateTime, nullable=False),
    UniqueConstraint("event_id", "target", name="uq_forward_deliveries_event_id"),
    Index("ix_forward_deliveries_pending", "target", "ig_account_id", "delivered_at", "event_id"),
)
