"""the municipality role and the municipality numbers its users act for

Users with the `municipality` role read their municipality's § 3-3 feedback on the statistics
site; `municipality_access` binds each of them to one or more municipality numbers. The role
column's CHECK constraint gains the new value.

Revision ID: 0014
Revises: 0006
Created: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

import tre.models

revision = "0014"
down_revision = "0012"
branch_labels = None
depends_on = None

OLD_ROLES = ("researcher", "officer", "admin", "custodian")
NEW_ROLES = (*OLD_ROLES, "municipality")


def _role(values):
    return sa.Enum(*values, name="role", native_enum=False, create_constraint=True, length=32)


def upgrade() -> None:
    with op.batch_alter_table("user_roles") as batch:
        batch.alter_column("role", existing_type=_role(OLD_ROLES), type_=_role(NEW_ROLES), existing_nullable=False)
    op.create_table(
        "municipality_access",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("municipality", sa.String(length=4), nullable=False),
        sa.Column("granted_at", tre.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("granted_by", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_municipality_access_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_municipality_access")),
        sa.UniqueConstraint("user_id", "municipality", name=op.f("uq_municipality_access_user_id")),
    )


def downgrade() -> None:
    op.drop_table("municipality_access")
    op.execute("DELETE FROM user_roles WHERE role = 'municipality'")
    with op.batch_alter_table("user_roles") as batch:
        batch.alter_column("role", existing_type=_role(NEW_ROLES), type_=_role(OLD_ROLES), existing_nullable=False)
