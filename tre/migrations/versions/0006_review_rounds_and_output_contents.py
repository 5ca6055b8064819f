"""review rounds and the contents of request files

A returned request that its author reopens starts a new round of reviews: requests and
reviews get a `round`, and one officer may review a request once per round; an officer who
returns an approved request leaves the reason for its author (`returned_reason`). A request file
(one queued output) records every file it holds with its sha256 (`contents`) and the queued
output's description (`meta`).

Revision ID: 0006
Revises: 0007
Created: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("output_requests") as batch:
        batch.add_column(sa.Column("round", sa.Integer(), server_default="1", nullable=False))
        batch.add_column(sa.Column("returned_reason", sa.Text(), nullable=True))
    with op.batch_alter_table("request_files") as batch:
        batch.add_column(sa.Column("contents", sa.JSON(), server_default="[]", nullable=False))
        batch.add_column(sa.Column("meta", sa.JSON(), server_default="{}", nullable=False))
    with op.batch_alter_table("reviews") as batch:
        batch.add_column(sa.Column("round", sa.Integer(), server_default="1", nullable=False))
        batch.drop_constraint("uq_reviews_request_id", type_="unique")
        batch.create_unique_constraint("uq_reviews_request_id", ["request_id", "reviewer_id", "round"])


def downgrade() -> None:
    with op.batch_alter_table("reviews") as batch:
        batch.drop_constraint("uq_reviews_request_id", type_="unique")
        batch.create_unique_constraint("uq_reviews_request_id", ["request_id", "reviewer_id"])
        batch.drop_column("round")
    with op.batch_alter_table("request_files") as batch:
        batch.drop_column("meta")
        batch.drop_column("contents")
    with op.batch_alter_table("output_requests") as batch:
        batch.drop_column("returned_reason")
        batch.drop_column("round")
