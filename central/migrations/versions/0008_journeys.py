"""Journeys: trucks' passages linked across checkpoints, and dispatch calls from the queue.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "journeys",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("site", sa.String(64), nullable=False),
        sa.Column("plate", sa.String(16), nullable=False),
        sa.Column("plates", sa.JSON, nullable=False),
        sa.Column("alternatives", sa.JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("zone", sa.String(64), nullable=True),
        sa.Column("zone_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("first_role", sa.String(32), nullable=False),
        sa.Column("marks", sa.JSON, nullable=False),
        sa.Column("last_role", sa.String(32), nullable=False),
        sa.Column("last_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ambiguous", sa.Boolean, nullable=False),
        sa.Column("rivals", sa.JSON, nullable=False),
        sa.Column("priority", sa.Boolean, nullable=False),
        sa.Column("declared_plate", sa.String(16), nullable=True),
        sa.Column("company", sa.String(200), nullable=True),
        sa.Column("goods_category", sa.String(32), nullable=True),
        sa.Column("yard_wait_s", sa.Float, nullable=True),
        sa.Column("inspection_s", sa.Float, nullable=True),
        sa.Column("total_s", sa.Float, nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_journeys_site_status", "journeys", ["site", "status"])
    op.create_index("ix_journeys_started_at", "journeys", ["started_at"])
    op.create_index("ix_journeys_ended_at", "journeys", ["ended_at"])
    op.create_table(
        "journey_passages",
        sa.Column("passage_event_id", sa.String(64), primary_key=True),
        sa.Column("journey_id", sa.Integer, nullable=False),
        sa.Column("site", sa.String(64), nullable=False),
        sa.Column("lane", sa.String(64), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("score", sa.Float, nullable=True),
    )
    op.create_index("ix_journey_passages_journey_id", "journey_passages", ["journey_id"])
    op.create_table(
        "dispatch_calls",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("site", sa.String(64), nullable=False),
        sa.Column("journey_id", sa.Integer, nullable=False),
        sa.Column("lane", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("called_by", sa.String(64), nullable=False),
        sa.Column("called_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deadline", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_dispatch_calls_journey_id", "dispatch_calls", ["journey_id"])


def downgrade() -> None:
    op.drop_table("dispatch_calls")
    op.drop_table("journey_passages")
    op.drop_table("journeys")
