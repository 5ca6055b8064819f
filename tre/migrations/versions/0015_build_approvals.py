"""key custodians approve § 4-5 builds

`build_approvals`: a § 4-5 build (one that decrypts ID numbers) waits for a key custodian's
approval of that build: project, approval version and person count, who asked, who approved,
and the extract that used it (§ 5-2 third paragraph).

Revision ID: 0015
Revises: 0016
Created: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

import tre.models

revision = "0015"
# Reserved as "regulation"; main's head is 0016 when this was written (the lead re-chains).
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "build_approvals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.String(length=64), nullable=False),
        sa.Column("approval_id", sa.String(length=64), nullable=False),
        sa.Column("approval_version", sa.Integer(), nullable=False),
        sa.Column("persons", sa.Integer(), nullable=False),
        sa.Column("reference", sa.String(length=200), nullable=False),
        sa.Column("requested_by", sa.String(length=64), nullable=False),
        sa.Column("requested_at", tre.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("approved_by", sa.String(length=64), nullable=True),
        sa.Column("approved_at", tre.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("extract_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["approval_id"], ["approvals.id"], name=op.f("fk_build_approvals_approval_id_approvals")),
        sa.ForeignKeyConstraint(["extract_id"], ["extracts.id"], name=op.f("fk_build_approvals_extract_id_extracts")),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"], name=op.f("fk_build_approvals_project_id_projects")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_build_approvals")),
        sa.UniqueConstraint("extract_id", name=op.f("uq_build_approvals_extract_id")),
    )


def downgrade() -> None:
    op.drop_table("build_approvals")
