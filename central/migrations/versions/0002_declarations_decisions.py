"""Declarations with lookup keys, decisions with history, fees, commands, lane status, audit log.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "declarations",
        sa.Column("number", sa.String(32), primary_key=True),
        sa.Column("direction", sa.String(8), nullable=False),
        sa.Column("tractor_plate", sa.String(16), nullable=False),
        sa.Column("trailer_plate", sa.String(16)),
        sa.Column("containers", sa.String(64), nullable=False),
        sa.Column("seals", sa.String(280), nullable=False),
        sa.Column("gross_weight_kg", sa.Float),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("window_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("gate", sa.String(64), nullable=False),
        sa.Column("lane_group", sa.String(32)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("company", sa.String(200), nullable=False),
        sa.Column("goods_category", sa.String(32), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_by_event_id", sa.String(64)),
        sa.Column("used_at", sa.DateTime(timezone=True)),
    )
    op.create_index("ix_declarations_tractor_plate", "declarations", ["tractor_plate"])
    op.create_table(
        "declaration_keys",
        sa.Column("key", sa.String(48), primary_key=True),
        sa.Column("declaration_number", sa.String(32), primary_key=True),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "decisions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("passage_event_id", sa.String(64), nullable=False),
        sa.Column("current", sa.Boolean, nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("action", sa.String(32)),
        sa.Column("reasons", sa.JSON, nullable=False),
        sa.Column("declaration_number", sa.String(32)),
        sa.Column("plate_score", sa.Float),
        sa.Column("rules_version", sa.String(48), nullable=False),
        sa.Column("decided_by", sa.String(64), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("note", sa.Text, nullable=False),
    )
    op.create_index("ix_decisions_passage_event_id", "decisions", ["passage_event_id"])
    op.create_index("ix_decisions_current_outcome", "decisions", ["current", "outcome"])
    op.create_index("ix_decisions_declaration_number", "decisions", ["declaration_number"])
    op.create_table(
        "fee_assessments",
        sa.Column("passage_event_id", sa.String(64), primary_key=True),
        sa.Column("declaration_number", sa.String(32)),
        sa.Column("amount_vnd", sa.Integer, nullable=False),
        sa.Column("basis", sa.String(16), nullable=False),
        sa.Column("multiplier", sa.Float, nullable=False),
        sa.Column("items", sa.JSON, nullable=False),
        sa.Column("table_version", sa.String(48), nullable=False),
        sa.Column("assessed_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "commands",
        sa.Column("command_id", sa.String(64), primary_key=True),
        sa.Column("site", sa.String(64), nullable=False),
        sa.Column("lane", sa.String(64), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("passage_event_id", sa.String(64)),
        sa.Column("message", sa.String(120)),
        sa.Column("inspection_lane", sa.String(32)),
        sa.Column("issued_by", sa.String(64), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ack_ok", sa.Boolean),
        sa.Column("ack_detail", sa.String(200)),
        sa.Column("ack_node_id", sa.String(64)),
        sa.Column("acked_at", sa.DateTime(timezone=True)),
    )
    op.create_index("ix_commands_passage_event_id", "commands", ["passage_event_id"])
    op.create_index("ix_commands_issued_at", "commands", ["issued_at"])
    op.create_table(
        "lane_status",
        sa.Column("site", sa.String(64), primary_key=True),
        sa.Column("lane", sa.String(64), primary_key=True),
        sa.Column("node_id", sa.String(64), nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("queue_length", sa.Integer, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target_type", sa.String(32), nullable=False),
        sa.Column("target_id", sa.String(64), nullable=False),
        sa.Column("detail", sa.JSON, nullable=False),
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"])
    op.create_index("ix_audit_log_target", "audit_log", ["target_type", "target_id"])


def downgrade() -> None:
    for table in (
        "audit_log", "lane_status", "commands", "fee_assessments", "decisions",
        "declaration_keys", "declarations",
    ):
        op.drop_table(table)
