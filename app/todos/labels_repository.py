"""Labels' statements: the todo_labels index beside todos.labels, and the user's label counts.

A todo's labels are stored twice (docs/adr/0402-labels-denormalised.md): as given, in the
todos.labels column that every read of a todo returns with the row, and casefolded, one row
per label, in todo_labels, which the label= filter (app.todos.filters) and GET /labels read
through an index. Whoever writes todos.labels calls index() in the same transaction; a
deleted todo's rows go with it (ON DELETE CASCADE).
"""

import uuid
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, bindparam, case, delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts import access
from app.actor import Actor
from app.todos import fields
from app.todos.models import TodoLabel
from app.todos.schemas import label_key

LABELS = cast(Table, TodoLabel.__table__)
_L, _C = LABELS.c, fields.C
_USER = bindparam("user_id", type_=_L.user_id.type)

_FORGET = delete(LABELS).where(
    _L.todo_id == bindparam("todo_id"), _L.user_id == bindparam("user_id"), access.ADMITTED
)
# One row per label (executemany), from the user's todo itself: nothing for a todo that is
# not theirs, or while they may not act.
_ADD = insert(LABELS).from_select(
    ["todo_id", "name_key", "user_id", "name"],
    select(
        _C.id,
        bindparam("name_key", type_=_L.name_key.type),
        _C.owner_id,
        bindparam("name", type_=_L.name.type),
    ).where(_C.id == bindparam("todo_id"), _C.owner_id == _USER, access.ADMITTED),
)


async def index(
    session: AsyncSession,
    actor: Actor,
    todo_id: uuid.UUID,
    labels: list[str],
    *,
    new: bool = False,
) -> None:
    """Make todo_labels say what the todo's `labels` say (written in this transaction); a new
    todo has no rows to forget."""
    params = {**actor.params(), "todo_id": todo_id}
    if not new:
        await session.execute(_FORGET, params)
    if labels:
        rows = [{**params, "name_key": label_key(name), "name": name} for name in labels]
        await session.execute(_ADD, rows)


def having_label(param: str) -> Any:
    """The condition of label= (app.todos.filters): the todo has the label bound as `param`
    (casefolded), found through ix_todo_labels_user_key."""
    return _C.id.in_(
        select(_L.todo_id).where(
            _L.user_id == bindparam("user_id"), _L.name_key == bindparam(param)
        )
    )


@dataclass(frozen=True, slots=True)
class LabelCount:
    name: str
    count: int


# The user's labels and their counts: an index-only scan of ix_todo_labels_user_key.
_GROUPS = (
    select(_L.name_key, func.count().label("n"))
    .where(_L.user_id == bindparam("user_id"), access.ADMITTED)
    .group_by(_L.name_key)
    .subquery("groups")
)
_G = _GROUPS.c


def _spelling_by_recency() -> Any:
    """The user's todos from the most recently updated (ix_todos_owner_updated) to the first
    with the label: about todos / count steps when the label is common."""
    todos, labels = fields.TABLE.alias("recent"), LABELS.alias("recent_label")
    return (
        select(labels.c.name)
        .select_from(todos)
        .join(labels, (labels.c.todo_id == todos.c.id) & (labels.c.name_key == _G.name_key))
        .where(todos.c.owner_id == bindparam("user_id"))
        .order_by(todos.c.updated_at.desc(), todos.c.id.desc())
        .limit(1)
        .scalar_subquery()
    )


def _spelling_by_label() -> Any:
    """The label's own rows (ix_todo_labels_user_key), their todos sorted by recency: `count`
    steps, the cheaper way for a rare label, which the walk above could look for in vain."""
    todos, labels = fields.TABLE.alias("labelled"), LABELS.alias("own_label")
    return (
        select(labels.c.name)
        .select_from(labels)
        .join(todos, todos.c.id == labels.c.todo_id)
        .where(labels.c.user_id == bindparam("user_id"), labels.c.name_key == _G.name_key)
        .order_by(todos.c.updated_at.desc(), todos.c.id.desc())
        .limit(1)
        .scalar_subquery()
    )


# Above this many todos a label's spelling is found by walking the todos by recency; at or
# below, by sorting its own rows. On 10,000 todos with five labels on a third of them each,
# sorting every label's rows cost 120-210 ms, walking 10-15 ms (bench/labels_list.py).
WALK_ABOVE = 20
# A label's spelling: as on the user's most recently updated todo that has it (API.md).
_COUNTS = select(
    _G.name_key,
    _G.n,
    case((_G.n > WALK_ABOVE, _spelling_by_recency()), else_=_spelling_by_label()),
)


async def counts(session: AsyncSession, actor: Actor) -> list[LabelCount]:
    """The user's labels with how many of their todos have each, sorted by name ignoring case;
    empty also when the user may not act (the caller asks why)."""
    rows = (await session.execute(_COUNTS, actor.params())).all()
    # By the casefolded name in Python: SQL collations differ between the two databases.
    return [LabelCount(name, count) for _, count, name in sorted(rows, key=lambda row: row[0])]
