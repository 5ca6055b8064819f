"""a key custodian's build approval names its persons, is spent by the decryption, expires

`build_approvals.persons_digest`: the SHA-256 of the build's sorted cohort pids (as the release
record's persons digest), shown to the custodian; the decryption recomputes it from the pids it
is asked for and refuses on a mismatch. `build_approvals.decrypted_at`: when the approval was
spent by the one decryption it allows.

Revision ID: 0017
Revises: 0015
Created: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

import tre.models

revision = "0017"
# The brief named 0016 as parent; 0015 (which follows 0016 here) is this branch's one head.
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("build_approvals") as batch:
        batch.add_column(sa.Column("persons_digest", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("decrypted_at", tre.models.UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("build_approvals") as batch:
        batch.drop_column("decrypted_at")
        batch.drop_column("persons_digest")
