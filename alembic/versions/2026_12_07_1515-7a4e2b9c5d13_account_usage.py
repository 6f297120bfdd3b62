"""account_usage: each account's count of todos and lists, for the quotas

Revision ID: 7a4e2b9c5d13
Revises: a7e3c91d5b20
Create Date: 2026-12-07 15:15:00

Expand only: a new table, kept by triggers on todos and lists, and filled here from the rows
there are. The release before this one keeps working: it never reads the table, and the
triggers count its inserts and deletes too (they take the tables' write locks while they are
created, so no row is written between the count and the trigger). PostgreSQL counts once per
statement (transition tables): deleting a list of 10,000 todos is one update, not 10,000.
An insert adds to the account's row, creating it if need be (an upsert): a new user's
default list counts whichever trigger on users runs first.
"""

# ruff: noqa: S608 - the SQL is built from this file's own constants (the two table names)

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "7a4e2b9c5d13"
down_revision: str | None = "a7e3c91d5b20"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COUNTED = ("todos", "lists")


def _pg_function(table: str) -> str:
    return f"""CREATE FUNCTION account_usage_{table}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO account_usage AS usage (user_id, todos, lists)
        SELECT owner_id, {"count(*), 0" if table == "todos" else "0, count(*)"}
        FROM changed GROUP BY owner_id
        ON CONFLICT (user_id) DO UPDATE SET {table} = usage.{table} + excluded.{table};
    ELSE
        UPDATE account_usage AS usage SET {table} = usage.{table} - gone.n
        FROM (SELECT owner_id, count(*) AS n FROM changed GROUP BY owner_id) AS gone
        WHERE usage.user_id = gone.owner_id;
    END IF;
    RETURN NULL;
END $$"""


def _pg_triggers(table: str) -> list[str]:
    return [
        f"CREATE TRIGGER {table}_count_{event.lower()} AFTER {event} ON {table}"
        f" REFERENCING {side} TABLE AS changed FOR EACH STATEMENT"
        f" EXECUTE FUNCTION account_usage_{table}()"
        for event, side in (("INSERT", "NEW"), ("DELETE", "OLD"))
    ]


def _sqlite_triggers(table: str) -> list[str]:
    first = "1, 0" if table == "todos" else "0, 1"
    return [
        f"""CREATE TRIGGER {table}_count_insert AFTER INSERT ON {table} BEGIN
    INSERT INTO account_usage (user_id, todos, lists) VALUES (NEW.owner_id, {first})
    ON CONFLICT (user_id) DO UPDATE SET {table} = {table} + 1;
END""",
        f"""CREATE TRIGGER {table}_count_delete AFTER DELETE ON {table} BEGIN
    UPDATE account_usage SET {table} = {table} - 1 WHERE user_id = OLD.owner_id;
END""",
    ]


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    op.create_table(
        "account_usage",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("todos", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("lists", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_account_usage_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_account_usage")),
    )
    for table in _COUNTED:
        if postgres:
            op.execute(f"LOCK TABLE {table} IN SHARE ROW EXCLUSIVE MODE")
            op.execute(_pg_function(table))
            for statement in _pg_triggers(table):
                op.execute(statement)
        else:
            for statement in _sqlite_triggers(table):
                op.execute(statement)
    op.execute(
        "INSERT INTO account_usage (user_id, todos, lists) SELECT users.id,"
        " (SELECT count(*) FROM todos WHERE todos.owner_id = users.id),"
        " (SELECT count(*) FROM lists WHERE lists.owner_id = users.id) FROM users"
    )


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for table in _COUNTED:
        for event in ("insert", "delete"):
            op.execute(f"DROP TRIGGER {table}_count_{event}" + (f" ON {table}" if postgres else ""))
        if postgres:
            op.execute(f"DROP FUNCTION account_usage_{table}()")
    op.drop_table("account_usage")
