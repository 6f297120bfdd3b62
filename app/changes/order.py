"""Parents first: the order of the changes within one answer of the feed.

What a page holds is decided by the keyset (txid, object_id) alone, and the next token goes on
after the page's last row in that order (app.changes.service), so reordering the rows of one
page can neither skip nor repeat anything across pages. Within the page, a client applying the
changes one at a time into a local store with foreign keys needs an object's parents first: a
todo's list, and a subtask's todo. So the page keeps sequence order except that a parent in the
same page is pulled forward to just before the first object that needs it (a depth-first walk in
sequence order: the least reordering that puts every parent first).

Only live objects name their parents (from their item); a tombstone names none and keeps its
place: a deleted list's todos are deleted with it, and a client may apply either first.
"""

import uuid
from collections.abc import Sequence

from app.changes.repository import ChangeRow


def parents(row: ChangeRow) -> tuple[uuid.UUID, ...]:
    """What must come before this change when it is in the same answer: a todo's list, and
    its parent todo once todos have one (`parent_id`; a subtask is in its parent's list, so
    the list comes first either way)."""
    item = row.item
    if row.kind != "todo" or item is None:
        return ()
    parent = item.get("parent_id")
    list_id: uuid.UUID = item["list_id"]
    return (list_id,) if parent is None else (list_id, parent)


def parents_first(rows: Sequence[ChangeRow]) -> list[ChangeRow]:
    """The page's rows, each after every parent of it that is also in the page, otherwise in
    the order given (sequence order)."""
    # One row per object in a page (object_id is the changes table's key), and lists and
    # todos share one id space: an id names one row.
    by_id = {row.object_id: row for row in rows}
    placed: set[uuid.UUID] = set()
    ordered: list[ChangeRow] = []

    def place(row: ChangeRow) -> None:
        if row.object_id in placed:
            return
        # Marked before its parents are placed: a cycle (impossible but for a bug) ends here
        # instead of recursing for ever. Depth is at most list <- todo <- subtask.
        placed.add(row.object_id)
        for parent_id in parents(row):
            parent = by_id.get(parent_id)
            if parent is not None:
                place(parent)
        ordered.append(row)

    for row in rows:
        place(row)
    return ordered
