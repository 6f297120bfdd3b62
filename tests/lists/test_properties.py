"""Random sequences of creates, moves, list changes and deletes, against a model of the order:
positions stay unique, the server's order is the model's, and the feed replays to the
server's state from any point."""

from typing import Any

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.changes.helpers import Replica, server_state
from tests.conftest import ApiUser, make_user

index = st.integers(min_value=0, max_value=50)
maybe = st.none() | index
operations = st.lists(
    st.one_of(
        st.tuples(st.just("create_list")),
        st.tuples(st.just("create_todo"), index),
        st.tuples(st.just("move_todo"), index, maybe, maybe),
        st.tuples(st.just("change_list"), index, index),
        st.tuples(st.just("delete_todo"), index),
        st.tuples(st.just("delete_list"), index),
        st.tuples(st.just("move_list"), index, maybe),
        st.tuples(st.just("sync")),
    ),
    max_size=18,
)


class Model:
    """What the order must be: lists in order, and each list's todos in order."""

    def __init__(self, client: TestClient, user: ApiUser) -> None:
        self.client, self.user = client, user
        inbox = client.get("/api/v1/lists", headers=user.headers).json()["items"][0]["id"]
        self.lists: list[str] = [inbox]
        self.todos: dict[str, list[str]] = {inbox: []}

    def pick(self, items: list[str], i: int | None) -> str | None:
        return None if i is None or not items else items[i % len(items)]

    def all_todos(self) -> list[str]:
        return [t for todos in self.todos.values() for t in todos]

    def list_of(self, todo_id: str) -> str:
        return next(lst for lst, todos in self.todos.items() if todo_id in todos)

    def post(self, path: str, body: Any) -> Any:
        return self.client.post(path, json=body, headers=self.user.headers)

    def run(self, op: tuple[Any, ...], replica: Replica) -> None:
        getattr(self, op[0])(*op[1:]) if op[0] != "sync" else replica.sync(self.client, limit=5)

    def create_list(self) -> None:
        response = self.post("/api/v1/lists", {"name": "l"})
        assert response.status_code == 201
        self.lists.append(response.json()["id"])
        self.todos[response.json()["id"]] = []

    def create_todo(self, i: int) -> None:
        list_id = self.pick(self.lists, i)
        response = self.post("/api/v1/todos", {"title": "t", "list_id": list_id})
        assert response.status_code == 201, response.text
        self.todos[str(list_id)].append(response.json()["id"])

    def move_todo(self, i: int, after_i: int | None, list_i: int | None) -> None:
        todo_id = self.pick(self.all_todos(), i)
        if todo_id is None:
            return
        target = self.pick(self.lists, list_i) or self.list_of(todo_id)
        others = [t for t in self.todos[target] if t != todo_id]
        after = self.pick(others, after_i)
        body = {"after": after} | ({"list_id": target} if list_i is not None else {})
        response = self.post(f"/api/v1/todos/{todo_id}/move", body)
        assert response.status_code == 200, response.text
        self.todos[self.list_of(todo_id)].remove(todo_id)
        others.insert(0 if after is None else others.index(after) + 1, todo_id)
        self.todos[target] = others

    def change_list(self, i: int, list_i: int) -> None:
        todo_id, target = self.pick(self.all_todos(), i), self.pick(self.lists, list_i)
        if todo_id is None or target is None:
            return
        response = self.client.patch(
            f"/api/v1/todos/{todo_id}", json={"list_id": target}, headers=self.user.headers
        )
        assert response.status_code == 200, response.text
        if self.list_of(todo_id) != target:  # another list: its end; the same: no move
            self.todos[self.list_of(todo_id)].remove(todo_id)
            self.todos[target].append(todo_id)

    def delete_todo(self, i: int) -> None:
        todo_id = self.pick(self.all_todos(), i)
        if todo_id is not None:
            response = self.client.delete(f"/api/v1/todos/{todo_id}", headers=self.user.headers)
            assert response.status_code == 204
            self.todos[self.list_of(todo_id)].remove(todo_id)

    def delete_list(self, i: int) -> None:
        list_id = self.pick(self.lists, i)
        response = self.client.delete(f"/api/v1/lists/{list_id}", headers=self.user.headers)
        if list_id == self._inbox:  # the default list stays
            assert response.status_code == 409
            return
        assert response.status_code == 204
        self.lists.remove(str(list_id))
        del self.todos[str(list_id)]

    @property
    def _inbox(self) -> str:
        return next(iter(self.todos))  # the first key: the default list

    def move_list(self, i: int, after_i: int | None) -> None:
        list_id = str(self.pick(self.lists, i))
        others = [lst for lst in self.lists if lst != list_id]
        after = self.pick(others, after_i)
        response = self.post(f"/api/v1/lists/{list_id}/move", {"after": after})
        assert response.status_code == 200, response.text
        others.insert(0 if after is None else others.index(after) + 1, list_id)
        self.lists = others


def check(model: Model, replica: Replica) -> None:
    client, user = model.client, model.user
    state = server_state(client, user)
    lists = sorted((item for (kind, _), item in state.items() if kind == "list"),
                   key=lambda item: item["position"])  # fmt: skip
    assert [item["id"] for item in lists] == model.lists
    assert len({item["position"] for item in lists}) == len(lists)
    for list_id, expected in model.todos.items():
        todos = sorted((item for (kind, _), item in state.items()
                        if kind == "todo" and item["list_id"] == list_id),
                       key=lambda item: item["position"])  # fmt: skip
        assert [item["id"] for item in todos] == expected
        assert len({item["position"] for item in todos}) == len(todos)
    replica.sync(client, limit=5)
    assert replica.objects == state
    fresh = Replica(user)
    fresh.sync(client, limit=5)
    assert fresh.objects == state


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(operations)
def test_random_sequences_keep_the_order_and_the_feed_replayable(
    client: TestClient, ops: list[tuple[Any, ...]]
) -> None:
    user = make_user(client)
    model = Model(client, user)
    replica = Replica(user)
    replica.sync(client)
    for op in ops:
        model.run(op, replica)
    check(model, replica)
