"""Evidence images kept at central, legal holds, and passages purged by retention.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "evidence_images",
        sa.Column("passage_event_id", sa.String(64), primary_key=True),
        sa.Column("image_id", sa.String(64), primary_key=True),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("uploaded_by", sa.String(64), nullable=False),
        sa.Column("stored_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("purged_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_evidence_images_sha256", "evidence_images", ["sha256"])
    op.create_index("ix_evidence_images_stored_at", "evidence_images", ["stored_at"])
    op.create_table(
        "legal_holds",
        sa.Column("passage_event_id", sa.String(64), primary_key=True),
        sa.Column("set_by", sa.String(64), nullable=False),
        sa.Column("set_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
    )
    op.create_table(
        "purged_passages",
        sa.Column("passage_event_id", sa.String(64), primary_key=True),
        sa.Column("retention_class", sa.String(16), nullable=False),
        sa.Column("purged_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("images_deleted", sa.Integer, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("purged_passages")
    op.drop_table("legal_holds")
    op.drop_table("evidence_images")
