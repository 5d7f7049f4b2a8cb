"""channels.signing and channels.previous_secret, subscribers.signing (Standard Webhooks)

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("channels", schema=None) as batch_op:
        batch_op.add_column(sa.Column("signing", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("previous_secret", sa.Text(), nullable=True))
    with op.batch_alter_table("subscribers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("signing", sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("subscribers", schema=None) as batch_op:
        batch_op.drop_column("signing")
    with op.batch_alter_table("channels", schema=None) as batch_op:
        batch_op.drop_column("previous_secret")
        batch_op.drop_column("signing")
