"""comment threads, exception requests and groups of outputs

Researchers and officers talk in a thread per request and per output (`request_comments`:
as whom the author wrote, who may read it, the review round it belongs to). An output carries
its author's exception request (`request_files.exception`: why it should leave although its
check flagged it), and outputs added together share a context under a group name
(`request_files.group_name`).

Revision ID: 0016
Revises: 0014
Created: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

import tre.models

revision = "0016"
# Reserved as a child of 0006; main already holds 0014 (statistics) on 0006, and one head is
# needed, so it follows 0014 here (the lead re-chains at merge).
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("request_files") as batch:
        batch.add_column(sa.Column("exception", sa.Text(), nullable=True))
        batch.add_column(sa.Column("group_name", sa.String(length=100), nullable=True))
    op.create_table(
        "request_comments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=False),
        sa.Column("output", sa.String(length=400), nullable=True),
        sa.Column("author_id", sa.Integer(), nullable=False),
        sa.Column("written_as", sa.String(length=16), nullable=False),
        sa.Column(
            "visibility",
            sa.Enum(
                "everyone", "officers", name="commentvisibility", native_enum=False, create_constraint=True, length=32
            ),
            nullable=False,
        ),
        sa.Column("round", sa.Integer(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", tre.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["author_id"], ["users.id"], name=op.f("fk_request_comments_author_id_users")),
        sa.ForeignKeyConstraint(
            ["request_id"], ["output_requests.id"], name=op.f("fk_request_comments_request_id_output_requests")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_request_comments")),
    )
    op.create_index(op.f("ix_request_comments_request_id"), "request_comments", ["request_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_request_comments_request_id"), table_name="request_comments")
    op.drop_table("request_comments")
    with op.batch_alter_table("request_files") as batch:
        batch.drop_column("group_name")
        batch.drop_column("exception")
