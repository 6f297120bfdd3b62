"""lists, todo positions, the change feed

Revision ID: 5d2c8e7f1a90
Revises: 9d2f4c1a7b3e
Create Date: 2026-11-30 11:30:00

Expand only: todos.list_id and todos.position stay nullable, so the release before this one
(which knows neither) keeps inserting todos while this schema is in place; a trigger puts
them at the end of the owner's default list. Another trigger gives every new user a default
list, whichever release registers them. The changes table is written by triggers on lists and
todos (app.changes says why that makes the feed complete).

Contract step, for the release after every replica runs this one: make todos.list_id and
todos.position NOT NULL and drop the todos_fill_list trigger (and function on PostgreSQL).
The users_default_list, users_forget_changes and *_record_change triggers stay: they are how
the schema works. On SQLite, a later migration that rebuilds users, lists or todos (Alembic's
batch mode copies the table) drops their triggers with the old table: it must create them again.
"""

# ruff: noqa: S608 - the SQL here is assembled from this file's own constants, never input

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "5d2c8e7f1a90"
down_revision: str | None = "9d2f4c1a7b3e"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# A list's next key: the integer after its largest (app.lists.positions.key_after).
_PG_NEXT = (
    "lpad(CAST(COALESCE(CAST(substr(max(position), 1, 10) AS BIGINT), 0) + 1 AS TEXT), 10, '0')"
)
_SQLITE_NEXT = "printf('%010d', COALESCE(CAST(substr(max(position), 1, 10) AS BIGINT), 0) + 1)"
_SQLITE_NOW = "strftime('%Y-%m-%d %H:%M:%f000', 'now')"  # as UTCDateTime stores it

_PG_FUNCTIONS = [
    # Every new user gets a default list, whichever release inserted the user.
    """CREATE FUNCTION users_default_list() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO lists (id, owner_id, name, position, is_default, created_at, updated_at, version)
    VALUES (gen_random_uuid(), NEW.id, 'Inbox', '0000000001', true,
            COALESCE(NEW.created_at, now()), COALESCE(NEW.created_at, now()), 1);
    RETURN NULL;
END $$""",
    # The release before this one inserts todos without list_id and position.
    f"""CREATE FUNCTION todos_fill_list() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.list_id IS NULL THEN
        SELECT id INTO NEW.list_id FROM lists WHERE owner_id = NEW.owner_id AND is_default;
    END IF;
    IF NEW.position IS NULL THEN
        -- Old-release inserts into one list queue here instead of colliding on a key.
        PERFORM 1 FROM lists WHERE id = NEW.list_id FOR NO KEY UPDATE;
        NEW.position := (SELECT {_PG_NEXT} FROM todos WHERE list_id = NEW.list_id);
    END IF;
    RETURN NEW;
END $$""",
    # The account's changes go with it. A trigger rather than a foreign key: a foreign key
    # would check the owner on every recorded change (measured: most of the trigger's cost).
    """CREATE FUNCTION users_forget_changes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM changes WHERE owner_id = OLD.id;
    RETURN NULL;
END $$""",
    # The latest state of each object, stamped with the writing transaction's id.
    """CREATE FUNCTION record_change() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    object uuid;
    owner uuid;
BEGIN
    IF TG_OP = 'DELETE' THEN
        object := OLD.id;
        owner := OLD.owner_id;
        -- The account itself is going: its changes go with it (users_forget_changes).
        IF NOT EXISTS (SELECT 1 FROM users WHERE id = owner) THEN
            RETURN NULL;
        END IF;
    ELSE
        object := NEW.id;
        owner := NEW.owner_id;
    END IF;
    INSERT INTO changes (object_id, kind, owner_id, deleted, txid, changed_at)
    VALUES (object, TG_ARGV[0], owner, TG_OP = 'DELETE',
            CAST(CAST(pg_current_xact_id() AS TEXT) AS BIGINT), now())
    ON CONFLICT (object_id) DO UPDATE SET owner_id = EXCLUDED.owner_id,
        deleted = EXCLUDED.deleted, txid = EXCLUDED.txid, changed_at = EXCLUDED.changed_at;
    RETURN NULL;
END $$""",
]
_PG_TRIGGERS = [
    "CREATE TRIGGER users_default_list AFTER INSERT ON users"
    " FOR EACH ROW EXECUTE FUNCTION users_default_list()",
    "CREATE TRIGGER users_forget_changes AFTER DELETE ON users"
    " FOR EACH ROW EXECUTE FUNCTION users_forget_changes()",
    "CREATE TRIGGER todos_fill_list BEFORE INSERT ON todos FOR EACH ROW"
    " WHEN (NEW.list_id IS NULL OR NEW.position IS NULL) EXECUTE FUNCTION todos_fill_list()",
    "CREATE TRIGGER lists_record_change AFTER INSERT OR UPDATE OR DELETE ON lists"
    " FOR EACH ROW EXECUTE FUNCTION record_change('list')",
    "CREATE TRIGGER todos_record_change AFTER INSERT OR UPDATE OR DELETE ON todos"
    " FOR EACH ROW EXECUTE FUNCTION record_change('todo')",
]


def _sqlite_record(table: str, kind: str, event: str) -> str:
    row = "OLD" if event == "DELETE" else "NEW"
    # Writers are serialised on SQLite: a counter bumped inside the write is in commit order.
    guard = " WHEN EXISTS (SELECT 1 FROM users WHERE id = OLD.owner_id)" if row == "OLD" else ""
    return f"""CREATE TRIGGER {table}_record_{event.lower()} AFTER {event} ON {table}{guard}
BEGIN
    INSERT INTO change_clock (id, value) VALUES (1, 1)
        ON CONFLICT (id) DO UPDATE SET value = value + 1;
    INSERT INTO changes (object_id, kind, owner_id, deleted, txid, changed_at)
    VALUES ({row}.id, '{kind}', {row}.owner_id, {int(event == "DELETE")},
            (SELECT value FROM change_clock WHERE id = 1), {_SQLITE_NOW})
    ON CONFLICT (object_id) DO UPDATE SET owner_id = excluded.owner_id,
        deleted = excluded.deleted, txid = excluded.txid, changed_at = excluded.changed_at;
END"""


_SQLITE_TRIGGERS = [
    f"""CREATE TRIGGER users_default_list AFTER INSERT ON users
BEGIN
    INSERT INTO lists (id, owner_id, name, position, is_default, created_at, updated_at, version)
    VALUES (lower(hex(randomblob(16))), NEW.id, 'Inbox', '0000000001', 1,
            COALESCE(NEW.created_at, {_SQLITE_NOW}), COALESCE(NEW.created_at, {_SQLITE_NOW}), 1);
END""",
    """CREATE TRIGGER users_forget_changes AFTER DELETE ON users
BEGIN
    DELETE FROM changes WHERE owner_id = OLD.id;
END""",
    f"""CREATE TRIGGER todos_fill_list AFTER INSERT ON todos
WHEN NEW.list_id IS NULL OR NEW.position IS NULL
BEGIN
    UPDATE todos SET list_id = (SELECT id FROM lists WHERE owner_id = NEW.owner_id AND is_default)
    WHERE id = NEW.id AND list_id IS NULL;
    UPDATE todos SET position = (
        SELECT {_SQLITE_NEXT} FROM todos
        WHERE list_id = (SELECT list_id FROM todos WHERE id = NEW.id)
    ) WHERE id = NEW.id AND position IS NULL;
END""",
    *(
        _sqlite_record(table, kind, event)
        for table, kind in (("lists", "list"), ("todos", "todo"))
        for event in ("INSERT", "UPDATE", "DELETE")
    ),
]


def _timestamp(name: str) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False)


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    _create_tables()
    with op.batch_alter_table("todos") as batch:
        batch.add_column(sa.Column("list_id", sa.Uuid(), nullable=True))
        batch.add_column(sa.Column("position", sa.String(length=64), nullable=True))
        batch.create_foreign_key(
            op.f("fk_todos_list_id_lists"), "lists", ["list_id"], ["id"], ondelete="CASCADE"
        )
        batch.create_unique_constraint("uq_todos_list_position", ["list_id", "position"])
        batch.create_index("ix_todos_owner_position", ["owner_id", "position", "id"])
    if postgres:
        for statement in [*_PG_FUNCTIONS, *_PG_TRIGGERS]:
            op.execute(statement)
    else:
        for statement in _SQLITE_TRIGGERS:
            op.execute(statement)
    # With the triggers in place, so that every list and todo there is gets its change row:
    # a client starting without `since` receives them all.
    _existing_users_get_their_inbox(postgres)


def _create_tables() -> None:
    op.create_table(
        "lists",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("position", sa.String(length=64), nullable=False),
        sa.Column("is_default", sa.Boolean(), nullable=False),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name=op.f("fk_lists_owner_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lists")),
        sa.UniqueConstraint("owner_id", "position", name="uq_lists_owner_position"),
    )
    op.create_index(
        "uq_lists_owner_default",
        "lists",
        ["owner_id"],
        unique=True,
        postgresql_where=sa.text("is_default"),
        sqlite_where=sa.text("is_default"),
    )
    op.create_table(
        "changes",
        sa.Column("object_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=4), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("txid", sa.BigInteger(), nullable=False),
        _timestamp("changed_at"),
        sa.PrimaryKeyConstraint("object_id", name=op.f("pk_changes")),
    )
    op.create_index("ix_changes_owner_txid", "changes", ["owner_id", "txid", "object_id"])
    op.create_index(
        "ix_changes_tombstones",
        "changes",
        ["changed_at"],
        postgresql_where=sa.text("deleted"),
        sqlite_where=sa.text("deleted"),
    )
    op.create_table(
        "change_clock",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_change_clock")),
    )


def _existing_users_get_their_inbox(postgres: bool) -> None:
    new_id, now, true = (
        ("gen_random_uuid()", "now()", "true")
        if postgres
        else ("lower(hex(randomblob(16)))", _SQLITE_NOW, "1")
    )
    op.execute(
        "INSERT INTO lists (id, owner_id, name, position, is_default, created_at, updated_at,"
        f" version) SELECT {new_id}, id, 'Inbox', '0000000001', {true}, {now}, {now}, 1"
        " FROM users"
    )
    # Their todos, in the order they were created.
    key = "lpad(CAST(ranked.n AS TEXT), 10, '0')" if postgres else "printf('%010d', ranked.n)"
    op.execute(
        f"UPDATE todos SET list_id = lists.id, position = {key}"
        " FROM (SELECT id, row_number() OVER (PARTITION BY owner_id ORDER BY created_at, id) AS n"
        " FROM todos) AS ranked, lists"
        " WHERE todos.id = ranked.id AND lists.owner_id = todos.owner_id AND lists.is_default"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for trigger, table in [
            ("users_default_list", "users"),
            ("users_forget_changes", "users"),
            ("todos_fill_list", "todos"),
            ("lists_record_change", "lists"),
            ("todos_record_change", "todos"),
        ]:
            op.execute(f"DROP TRIGGER {trigger} ON {table}")
        functions = ("users_default_list", "users_forget_changes", "todos_fill_list")
        for function in (*functions, "record_change"):
            op.execute(f"DROP FUNCTION {function}()")
    else:
        op.execute("DROP TRIGGER users_default_list")
        op.execute("DROP TRIGGER users_forget_changes")
        op.execute("DROP TRIGGER todos_fill_list")
        for table in ("lists", "todos"):
            for event in ("insert", "update", "delete"):
                op.execute(f"DROP TRIGGER {table}_record_{event}")
    with op.batch_alter_table("todos") as batch:
        batch.drop_index("ix_todos_owner_position")
        batch.drop_constraint("uq_todos_list_position", type_="unique")
        batch.drop_constraint(op.f("fk_todos_list_id_lists"), type_="foreignkey")
        batch.drop_column("position")
        batch.drop_column("list_id")
    op.drop_table("change_clock")
    op.drop_table("changes")
    op.drop_index("uq_lists_owner_default", table_name="lists")
    op.drop_table("lists")
