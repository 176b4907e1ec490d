"""Matching: placeholder, filled in by its owner.

Revision ID: 0006
Revises: 0005
"""

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Placeholder, filled in by its owner."""


def downgrade() -> None:
    """Placeholder, filled in by its owner."""
