"""Matching (issue 17): no schema change.

The matching and throughput work of issue 17 needed no new table, column or index: the
candidate look-up already uses the `declaration_keys` primary key (`key`, then the
declaration number) and `declarations.number`. The revision keeps the fixed chain
0005 → 0006 → 0007.

Revision ID: 0006
Revises: 0005
"""

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Nothing to change (see the module docstring)."""


def downgrade() -> None:
    """Nothing to undo."""
