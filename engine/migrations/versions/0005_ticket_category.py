"""ticket category and indexes for reports

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("category", sa.String(length=40), nullable=True))
        batch_op.create_index("ix_tickets_category", ["category"], unique=False)
        batch_op.create_index("ix_tickets_created_at", ["created_at"], unique=False)
        batch_op.create_index("ix_tickets_resolved_at", ["resolved_at"], unique=False)
        batch_op.create_index("ix_tickets_closed_at", ["closed_at"], unique=False)
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.create_index("ix_tasks_completed_at", ["completed_at"], unique=False)
    # Tickets that still have a workflow state get the category their qualification gave.
    if op.get_bind().dialect.name == "postgresql":
        category = "substr(ticket_states.variables::json ->> 'category', 1, 40)"
    else:
        category = "substr(json_extract(ticket_states.variables, '$.category'), 1, 40)"
    op.execute(
        f"UPDATE tickets SET category = (SELECT {category} FROM ticket_states "
        "WHERE ticket_states.ticket_id = tickets.id) "
        "WHERE kind = 'incident' AND EXISTS "
        "(SELECT 1 FROM ticket_states WHERE ticket_states.ticket_id = tickets.id)"
    )


def downgrade() -> None:
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_index("ix_tasks_completed_at")
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.drop_index("ix_tickets_closed_at")
        batch_op.drop_index("ix_tickets_resolved_at")
        batch_op.drop_index("ix_tickets_created_at")
        batch_op.drop_index("ix_tickets_category")
        batch_op.drop_column("category")
