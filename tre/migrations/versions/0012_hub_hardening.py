"""hub hardening: sealed TOTP secrets with one use per code, wrapped data keys, CLI OS logins

Revision ID: 0012
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

import tre.models

revision = "0012"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "wrapped_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("master_key_id", sa.String(length=64), nullable=False),
        sa.Column("wrapped", sa.LargeBinary(), nullable=False),
        sa.Column("wrapped_at", tre.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_wrapped_keys")),
        sa.UniqueConstraint("name", "master_key_id", name=op.f("uq_wrapped_keys_name")),
    )
    op.create_table(
        "os_logins",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("os_user", sa.String(length=64), nullable=False),
        sa.Column("granted_at", tre.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("granted_by", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_os_logins_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_os_logins")),
        sa.UniqueConstraint("user_id", "os_user", name=op.f("uq_os_logins_user_id")),
    )
    with op.batch_alter_table("login_credentials") as batch:
        batch.alter_column("totp_secret", existing_type=sa.String(length=64), type_=sa.String(length=255))
        batch.add_column(sa.Column("totp_last_step", sa.BigInteger(), nullable=True))
    # TOTP secrets stored before this revision are plain text: `tre init` seals them (it needs
    # the master key, which a migration does not have).


def downgrade() -> None:
    with op.batch_alter_table("login_credentials") as batch:
        batch.drop_column("totp_last_step")
        batch.alter_column("totp_secret", existing_type=sa.String(length=255), type_=sa.String(length=64))
    op.drop_table("os_logins")
    op.drop_table("wrapped_keys")
