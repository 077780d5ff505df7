"""indexes for inbox counts and filtered ticket lists

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29 18:45:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

READY = "state = 'ready'"


def upgrade() -> None:
    # Ticket lists filtered by status and priority: page and count from the index alone.
    op.create_index("ix_tickets_status_priority_id", "tickets", ["status", "priority", "id"],
                    unique=False)
    # Ready tasks only, with every column an inbox condition names: inbox and queue counts
    # never read the table (nor the history of completed tasks).
    for name, columns in (
        ("ix_tasks_ready_group", ["group_key", "assignee_id", "requester_id", "for_requester"]),
        ("ix_tasks_ready_assignee",
         ["assignee_id", "requester_id", "group_key", "for_requester"]),
    ):
        op.create_index(name, "tasks", columns, unique=False,
                        postgresql_where=sa.text(READY), sqlite_where=sa.text(READY))


def downgrade() -> None:
    op.drop_index("ix_tasks_ready_assignee", table_name="tasks")
    op.drop_index("ix_tasks_ready_group", table_name="tasks")
    op.drop_index("ix_tickets_status_priority_id", table_name="tickets")
