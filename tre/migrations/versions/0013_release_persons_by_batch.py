"""the persons of a release record by batch, with their digest

An extract's release record names the batch of persons it released in
`central/releases.duckdb` (`persons_batch`, a random UUID never handed out again) and their
SHA-256 (`persons_digest`), so that a killed build's persons can never be taken for a later
release's (issue 15). Records of the first layout held their persons under their own id:
those batches are called `record-<id>`.

Revision ID: 0013
Revises: 0006
Created: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("release_records") as batch:
        batch.add_column(sa.Column("persons_batch", sa.String(length=40), nullable=True))
        batch.add_column(sa.Column("persons_digest", sa.String(length=64), nullable=True))
        batch.create_unique_constraint("uq_release_records_persons_batch", ["persons_batch"])
    records = sa.table("release_records", sa.column("id", sa.Integer), sa.column("kind", sa.String), sa.column("persons_batch", sa.String))
    op.execute(
        records.update()
        .where(records.c.kind == "extract")
        .values(persons_batch=sa.literal("record-") + sa.cast(records.c.id, sa.String))
    )


def downgrade() -> None:
    with op.batch_alter_table("release_records") as batch:
        batch.drop_constraint("uq_release_records_persons_batch", type_="unique")
        batch.drop_column("persons_digest")
        batch.drop_column("persons_batch")
