"""Passages, rejected messages and edge nodes.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "passages",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("site", sa.String(64), nullable=False),
        sa.Column("lane", sa.String(64), nullable=False),
        sa.Column("node_id", sa.String(64), nullable=False),
        sa.Column("direction", sa.String(16), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("plate_text", sa.String(16)),
        sa.Column("plate_confidence", sa.Float),
        sa.Column("trailer_text", sa.String(16)),
        sa.Column("container_codes", sa.String(128), nullable=False),
        sa.Column("gross_kg", sa.Float),
        sa.Column("payload", sa.JSON, nullable=False),
    )
    op.create_index("ix_passages_event_id", "passages", ["event_id"], unique=True)
    op.create_index("ix_passages_site", "passages", ["site"])
    op.create_index("ix_passages_lane", "passages", ["lane"])
    op.create_index("ix_passages_ended_at", "passages", ["ended_at"])
    op.create_index("ix_passages_plate_text", "passages", ["plate_text"])
    op.create_table(
        "rejected_messages",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("topic", sa.String(256), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("payload", sa.LargeBinary, nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "edge_nodes",
        sa.Column("node_id", sa.String(64), primary_key=True),
        sa.Column("site", sa.String(64), primary_key=True),
        sa.Column("online", sa.Boolean, nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.JSON),
    )


def downgrade() -> None:
    op.drop_table("edge_nodes")
    op.drop_table("rejected_messages")
    op.drop_table("passages")
