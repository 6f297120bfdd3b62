"""The field tables (app/todos/fields.py, app/lists/fields.py) are what the schemas say: every
read field, in the read model's order, is a column; every writable one is a create field;
the insert names every column a todo has but the placement's and the owner."""

from pydantic import BaseModel

from app.lists import fields as list_fields
from app.lists.schemas import ListCreate, ListRead
from app.todos import fields as todo_fields
from app.todos.schemas import TodoCreate, TodoRead, TodoUpdate


def _fields(model: type[BaseModel]) -> list[str]:
    return list(model.model_fields)


def test_todo_fields_are_the_schemas() -> None:
    assert list(todo_fields.READ) == _fields(TodoRead)
    assert set(todo_fields.READ) <= set(todo_fields.C.keys())
    # Writable: what TodoCreate and TodoUpdate take, but the placement (list_id).
    assert set(todo_fields.WRITABLE) == set(_fields(TodoCreate)) - {"list_id"}
    assert set(todo_fields.WRITABLE) == set(_fields(TodoUpdate)) - {"list_id"}
    placed = {"owner_id", "list_id", "position"}
    assert set(todo_fields.INSERTED) == set(todo_fields.C.keys()) - placed
    assert [c.name for c in todo_fields.READ_COLUMNS] == list(todo_fields.READ)
    assert "version" in todo_fields.READ  # the ETag's integer is in every body (issue 27)


def test_list_fields_are_the_schemas() -> None:
    assert list(list_fields.READ) == _fields(ListRead)
    assert set(list_fields.READ) <= set(list_fields.C.keys())
    assert set(list_fields.WRITABLE) == set(_fields(ListCreate))
    assert [c.name for c in list_fields.READ_COLUMNS] == list(list_fields.READ)
    assert "version" in list_fields.READ
