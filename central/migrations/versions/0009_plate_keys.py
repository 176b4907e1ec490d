"""Plate keys: the candidate look-up keys of each distinct declared tractor plate (issue 17).

The ingest's read-ahead finds look-alike plates under a batch's keys here, filters them, and
reads only the declarations of the plates it keeps (`declaration_keys` points every key at
every declaration of a plate). Filled from the declarations already stored.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

from central.domain.matching import plate_lookup_keys

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    table = op.create_table(
        "plate_keys",
        sa.Column("key", sa.String(48), primary_key=True),
        sa.Column("plate", sa.String(16), primary_key=True),
        sqlite_with_rowid=False,
    )
    plates = op.get_bind().execute(sa.text("SELECT DISTINCT tractor_plate FROM declarations"))
    rows = [{"key": k, "plate": p} for (p,) in plates for k in plate_lookup_keys(p)]
    if rows:
        op.bulk_insert(table, rows)


def downgrade() -> None:
    op.drop_table("plate_keys")
