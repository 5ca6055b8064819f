"""central zone: the reservation history moves to the register store

Revision ID: 0003
Revises: 0001
Created: 2026-11-27

The reservation-status history is register data (§ 2-1 h) written by ingest in the same
transaction as the rest of a delivery, so it lives in the central zone's register store
(`reservasjon`, view `reservation_history`); the metadata store's table goes.
"""

import sqlalchemy as sa
from alembic import op

import tre.models


revision = '0003'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('reservations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_reservations_pid'))
    op.drop_table('reservations')


def downgrade() -> None:
    op.create_table('reservations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('pid', sa.String(length=40), nullable=False),
    sa.Column('kind', sa.Enum('registration', 'release_with_fnr', name='reservationkind', native_enum=False, create_constraint=True, length=32), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('effective_at', tre.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('message_id', sa.String(length=64), nullable=False),
    sa.Column('delivery_id', sa.Integer(), nullable=True),
    sa.Column('recorded_at', tre.models.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['delivery_id'], ['deliveries.id'], name=op.f('fk_reservations_delivery_id_deliveries')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reservations'))
    )
    with op.batch_alter_table('reservations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_reservations_pid'), ['pid'], unique=False)
