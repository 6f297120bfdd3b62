"""GET /api/v1/todos: paging, sorting, filtering and keyset cursor walks (spec/API.md, Todos)."""

import base64
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import ApiUser
from tests.todos.helpers import decode_cursor, encode_cursor, list_todos, real_cursor

Todo = dict[str, Any]

PRIORITY_RANK = {"low": 0, "normal": 1, "high": 2}
SORTS = [
    f"{direction}{field}"
    for field in ("created_at", "updated_at", "due_date", "priority", "title")
    for direction in ("", "-")
]
# Cycles of coprime lengths, so ties in one field fall on different todos than ties in another.
# Lower-case single words: their order is the same under every collation.
TITLES = ["bravo", "alpha", "charlie", "alpha"]
PRIORITIES = ["normal", "high", "low"]
DUE_DATES = [
    None,
    "2030-03-01T09:00:00Z",
    "2030-03-01T11:00:00+02:00",  # the same instant as the one before: a tie
    None,
    "2029-07-04T18:30:00-05:00",
]
DUE = "2030-06-01T12:00:00Z"


def create(client: TestClient, user: ApiUser, title: str, **fields: Any) -> Todo:
    response = client.post("/api/v1/todos", json={"title": title, **fields}, headers=user.headers)
    assert response.status_code == 201, response.text
    body: Todo = response.json()
    return body


def patch(client: TestClient, user: ApiUser, todo_id: str, **fields: Any) -> Todo:
    response = client.patch(f"/api/v1/todos/{todo_id}", json=fields, headers=user.headers)
    assert response.status_code == 200, response.text
    body: Todo = response.json()
    return body


def walk(
    client: TestClient,
    user: ApiUser,
    limit: int = 3,
    between_pages: Callable[[], None] | None = None,
    **params: Any,
) -> list[Todo]:
    """Follow next_cursor to the end; every page but the last is full, and none is empty."""
    items: list[Todo] = []
    cursor: str | None = None
    for _ in range(200):
        page_params = {**params, "limit": limit} | ({"cursor": cursor} if cursor else {})
        page = list_todos(client, user, **page_params)
        cursor = page["next_cursor"]
        assert len(page["items"]) <= limit
        if cursor is not None:
            assert len(page["items"]) == limit  # more remain: the page is full
        assert page["items"] or (cursor is None and not items)  # a cursor never leads nowhere
        items += page["items"]
        if cursor is None:
            return items
        if between_pages is not None:
            between_pages()
    raise AssertionError("the cursor walk does not end")


def sort_key(todo: Todo, field: str) -> Any:
    value = todo[field]
    if field == "priority":
        return PRIORITY_RANK[value]
    if field in ("created_at", "updated_at", "due_date"):
        return datetime.fromisoformat(value)
    return value


def expected_order(todos: list[Todo], sort: str) -> list[str]:
    """The contract's order: by the field, ties by id the same way, null due dates last."""
    field, descending = sort.removeprefix("-"), sort.startswith("-")
    valued = [todo for todo in todos if todo[field] is not None]
    nulls = [todo for todo in todos if todo[field] is None]
    valued.sort(key=lambda todo: (sort_key(todo, field), uuid.UUID(todo["id"])), reverse=descending)
    nulls.sort(key=lambda todo: uuid.UUID(todo["id"]), reverse=descending)
    return [todo["id"] for todo in valued + nulls]


def ids(todos: list[Todo]) -> list[str]:
    return [todo["id"] for todo in todos]


def make_tied_dataset(client: TestClient, user: ApiUser, count: int = 18) -> list[Todo]:
    """Todos sharing titles, priorities and due dates (some none); some updated since."""
    todos = [
        create(
            client,
            user,
            TITLES[i % len(TITLES)],
            priority=PRIORITIES[i % len(PRIORITIES)],
            due_date=DUE_DATES[i % len(DUE_DATES)],
        )
        for i in range(count)
    ]
    # Updated newest-first, so updated_at runs against created_at for these.
    for i in reversed(range(0, count, 3)):
        todos[i] = patch(client, user, todos[i]["id"], description=f"updated {i}")
    todos[4] = patch(client, user, todos[4]["id"], completed=True)
    todos[1] = patch(client, user, todos[1]["id"], due_date=None)
    return todos


def assert_422(client: TestClient, user: ApiUser, **params: Any) -> list[dict[str, Any]]:
    response = client.get("/api/v1/todos", params=params, headers=user.headers)
    assert response.status_code == 422, response.text
    errors: list[dict[str, Any]] = response.json()["detail"]
    assert errors
    assert all({"loc", "msg", "type"} <= set(error) for error in errors)
    return errors


# --- the page ---------------------------------------------------------------------------------


def test_empty_list(client: TestClient, user: ApiUser) -> None:
    assert list_todos(client, user) == {"items": [], "next_cursor": None}


def test_needs_a_bearer_token(client: TestClient) -> None:
    response = client.get("/api/v1/todos")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


def test_default_is_newest_first_and_everything_fits_in_20(
    client: TestClient, user: ApiUser
) -> None:
    todos = [create(client, user, f"todo {i}") for i in range(20)]
    page = list_todos(client, user)
    assert page == {"items": todos[::-1], "next_cursor": None}


def test_default_limit_is_20_and_the_last_page_has_no_cursor(
    client: TestClient, user: ApiUser
) -> None:
    todos = [create(client, user, f"todo {i}") for i in range(21)]
    first = list_todos(client, user)
    assert first["items"] == todos[:0:-1]
    assert first["next_cursor"] is not None
    second = list_todos(client, user, cursor=first["next_cursor"])
    assert second == {"items": [todos[0]], "next_cursor": None}


def test_the_last_full_page_has_no_cursor(client: TestClient, user: ApiUser) -> None:
    todos = [create(client, user, f"todo {i}") for i in range(6)]
    first = list_todos(client, user, limit=3)
    assert ids(first["items"]) == ids(todos[:2:-1])
    second = list_todos(client, user, limit=3, cursor=first["next_cursor"])
    assert ids(second["items"]) == ids(todos[2::-1])
    assert second["next_cursor"] is None


@pytest.mark.parametrize("limit", [1, 100])
def test_limit_bounds_are_accepted(client: TestClient, user: ApiUser, limit: int) -> None:
    todos = [create(client, user, f"todo {i}") for i in range(3)]
    page = list_todos(client, user, limit=limit)
    assert ids(page["items"]) == ids(todos[::-1])[:limit]
    assert (page["next_cursor"] is not None) == (limit < 3)


def test_limit_100_returns_100(client: TestClient, user: ApiUser) -> None:
    for i in range(101):
        create(client, user, f"todo {i}")
    page = list_todos(client, user, limit=100)
    assert len(page["items"]) == 100
    rest = list_todos(client, user, limit=100, cursor=page["next_cursor"])
    assert len(rest["items"]) == 1
    assert rest["next_cursor"] is None


# --- validation -------------------------------------------------------------------------------


@pytest.mark.parametrize("limit", ["0", "101", "-1", "abc", "1.5", ""])
def test_bad_limit_is_422(client: TestClient, user: ApiUser, limit: str) -> None:
    errors = assert_422(client, user, limit=limit)
    assert errors[0]["loc"][-1] == "limit"


@pytest.mark.parametrize(
    "sort", ["name", "id", "--title", "+title", "Title", "title,priority", "-", ""]
)
def test_unknown_sort_is_422(client: TestClient, user: ApiUser, sort: str) -> None:
    errors = assert_422(client, user, sort=sort)
    assert errors[0]["loc"][-1] == "sort"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("priority", "urgent"),
        ("priority", "HIGH"),
        ("priority", "2"),
        ("completed", "maybe"),
        ("due_before", "tomorrow"),
        ("due_after", "2030-13-01T00:00:00Z"),
    ],
)
def test_bad_filter_is_422(client: TestClient, user: ApiUser, name: str, value: str) -> None:
    errors = assert_422(client, user, **{name: value})
    assert errors[0]["loc"][-1] == name


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage!",
        "x",
        "%%%",
        "a" * 2000,
        encode_cursor({"junk": True}),
        encode_cursor([1, 2, 3]),
        encode_cursor("just a string"),
        encode_cursor(None),
        encode_cursor(42),
        base64.urlsafe_b64encode(b"{not json").decode(),
        base64.urlsafe_b64encode(b"\xff\xfe\x00binary").decode(),
    ],
)
def test_garbage_cursor_is_422(client: TestClient, user: ApiUser, cursor: str) -> None:
    for i in range(3):
        create(client, user, f"todo {i}")
    errors = assert_422(client, user, cursor=cursor)
    assert errors[0]["loc"][-1] == "cursor"


@pytest.mark.parametrize(
    ("made_for", "used_with"),
    [
        ({}, {"sort": "created_at"}),
        ({"sort": "title"}, {"sort": "-title"}),
        ({"sort": "title"}, {"sort": "priority"}),
        ({"sort": "due_date"}, {"sort": "-created_at"}),
        ({"completed": "false"}, {"completed": "true"}),
        ({"completed": "false"}, {}),
        ({}, {"priority": "normal"}),
        ({"q": "todo"}, {"q": "TODO"}),
        ({"due_after": "2020-01-01T00:00:00Z"}, {"due_after": "2020-01-02T00:00:00Z"}),
        ({"due_after": "2020-01-01T00:00:00Z"}, {"due_before": "2020-01-01T00:00:00Z"}),
    ],
)
def test_cursor_from_another_query_is_422(
    client: TestClient, user: ApiUser, made_for: dict[str, str], used_with: dict[str, str]
) -> None:
    for i in range(3):
        create(client, user, f"todo {i}", due_date=f"2030-01-0{i + 1}T00:00:00Z")
    cursor = real_cursor(client, user, **made_for)
    errors = assert_422(client, user, limit=1, cursor=cursor, **used_with)
    assert errors[0]["loc"][-1] == "cursor"


def test_a_cursor_may_be_used_with_another_limit(client: TestClient, user: ApiUser) -> None:
    todos = [create(client, user, f"todo {i}") for i in range(5)]
    cursor = real_cursor(client, user)
    page = list_todos(client, user, limit=10, cursor=cursor)
    assert ids(page["items"]) == ids(todos[3::-1])


@pytest.mark.parametrize(
    ("sort", "change"),
    [
        ("-created_at", {"id": "not-a-uuid"}),
        ("-created_at", {"id": None}),
        ("-created_at", {"v": "yesterday"}),
        ("-created_at", {"v": "2030-01-01T00:00:00"}),  # naive
        ("-created_at", {"v": 1700000000}),
        ("-created_at", {"v": None}),
        ("due_date", {"v": ["2030-01-01T00:00:00Z"]}),
        ("priority", {"v": "high"}),
        ("priority", {"v": True}),
        ("priority", {"v": 1.5}),
        ("priority", {"v": None}),
        # Beyond any rank the server issues, and any integer column: must not reach the database.
        pytest.param("priority", {"v": 10**30}, id="priority-out-of-range"),
        ("title", {"v": 7}),
        ("title", {"v": None}),
        ("title", {"f": "0" * 16}),
    ],
)
def test_tampered_cursor_is_422(
    client: TestClient, user: ApiUser, sort: str, change: dict[str, Any]
) -> None:
    for i in range(3):
        create(client, user, f"todo {i}", due_date=f"2030-01-0{i + 1}T00:00:00Z")
    payload = decode_cursor(real_cursor(client, user, sort=sort))
    errors = assert_422(client, user, sort=sort, cursor=encode_cursor(payload | change))
    assert errors[0]["loc"][-1] == "cursor"


def test_nul_in_q_is_never_a_500(client: TestClient, user: ApiUser) -> None:
    # PostgreSQL refuses NUL in text: the app may reject it (422) or find nothing, never crash.
    create(client, user, "todo")
    response = client.get("/api/v1/todos", params={"q": "a\x00b"}, headers=user.headers)
    assert response.status_code in (200, 422), response.text
    if response.status_code == 200:
        assert response.json() == {"items": [], "next_cursor": None}


def test_nul_in_cursor_title_is_never_a_500(client: TestClient, user: ApiUser) -> None:
    for i in range(3):
        create(client, user, f"todo {i}")
    payload = decode_cursor(real_cursor(client, user, sort="title")) | {"v": "todo \x00"}
    response = client.get(
        "/api/v1/todos",
        params={"sort": "title", "cursor": encode_cursor(payload)},
        headers=user.headers,
    )
    assert response.status_code in (200, 422), response.text


# --- sorting and cursor walks -----------------------------------------------------------------


@pytest.mark.parametrize("sort", SORTS)
def test_walk_returns_every_todo_once_in_contract_order(
    client: TestClient, user: ApiUser, sort: str
) -> None:
    todos = make_tied_dataset(client, user)
    walked = walk(client, user, sort=sort)
    assert ids(walked) == expected_order(todos, sort)
    by_id = {todo["id"]: todo for todo in todos}
    assert walked == [by_id[todo_id] for todo_id in ids(walked)]


@pytest.mark.parametrize("sort", SORTS)
def test_one_page_has_the_same_order_as_the_walk(
    client: TestClient, user: ApiUser, sort: str
) -> None:
    todos = make_tied_dataset(client, user, count=15)
    page = list_todos(client, user, sort=sort, limit=100)
    assert ids(page["items"]) == expected_order(todos, sort)
    assert page["next_cursor"] is None


@pytest.mark.parametrize("limit", [1, 2, 4, 7])
def test_walk_by_due_date_with_other_page_sizes(
    client: TestClient, user: ApiUser, limit: int
) -> None:
    # Page boundaries fall inside the tie at 09:00Z and inside the null tail.
    todos = make_tied_dataset(client, user, count=15)
    for sort in ("due_date", "-due_date"):
        assert ids(walk(client, user, limit=limit, sort=sort)) == expected_order(todos, sort)


@pytest.mark.parametrize("sort", ["due_date", "-due_date"])
def test_todos_without_due_date_come_last_both_ways(
    client: TestClient, user: ApiUser, sort: str
) -> None:
    undated = [create(client, user, f"undated {i}") for i in range(3)]
    dated = [
        create(client, user, f"dated {i}", due_date=due)
        for i, due in enumerate(["2031-01-01T00:00:00Z", "2020-01-01T00:00:00Z", DUE])
    ]
    walked = ids(walk(client, user, limit=2, sort=sort))
    assert set(walked[:3]) == set(ids(dated))
    assert set(walked[3:]) == set(ids(undated))
    soonest_first = ids([dated[1], dated[2], dated[0]])
    assert walked[:3] == (soonest_first[::-1] if sort.startswith("-") else soonest_first)


def test_priority_orders_low_normal_high(client: TestClient, user: ApiUser) -> None:
    for priority in ["high", "low", "normal", "low", "high", "normal"]:
        create(client, user, priority, priority=priority)
    ascending = [todo["priority"] for todo in walk(client, user, limit=4, sort="priority")]
    assert ascending == ["low", "low", "normal", "normal", "high", "high"]
    descending = [todo["priority"] for todo in walk(client, user, limit=4, sort="-priority")]
    assert descending == ["high", "high", "normal", "normal", "low", "low"]


def test_due_dates_sort_by_instant_not_by_text(client: TestClient, user: ApiUser) -> None:
    later = create(client, user, "later", due_date="2030-01-01T10:00:00+00:00")
    earlier = create(client, user, "earlier", due_date="2030-01-01T11:00:00+05:00")
    naive = create(client, user, "naive", due_date="2030-01-01T09:00:00")  # read as UTC
    walked = walk(client, user, limit=1, sort="due_date")
    assert ids(walked) == ids([earlier, naive, later])
    assert walked[0]["due_date"] in ("2030-01-01T06:00:00Z", "2030-01-01T06:00:00+00:00")


@pytest.mark.parametrize("sort", ["title", "-title"])
def test_walk_by_long_non_ascii_titles(client: TestClient, user: ApiUser, sort: str) -> None:
    # The cursor carries the last title: a 200-character title must still make a usable one.
    # Compared with one big page rather than Python's order, which may not be the collation's.
    todos = [
        create(client, user, letter * 200) for letter in ["ж", "ä", "日", "😀", "ж", "z", "日", "ä"]
    ]
    walked = ids(walk(client, user, limit=3, sort=sort))
    assert sorted(walked) == sorted(ids(todos))
    assert walked == ids(list_todos(client, user, limit=100, sort=sort)["items"])


@pytest.mark.parametrize("sort", ["-created_at", "created_at", "title"])
def test_walk_while_todos_are_being_created(client: TestClient, user: ApiUser, sort: str) -> None:
    originals = [create(client, user, TITLES[i % len(TITLES)]) for i in range(15)]
    new_titles = iter(["aardvark", "alpha", "bravo", "zulu", "charlie", "alpha"] * 20)
    created: list[Todo] = []

    def create_two() -> None:
        created.extend(create(client, user, next(new_titles)) for _ in range(2))

    walked = ids(walk(client, user, limit=3, between_pages=create_two, sort=sort))
    assert len(walked) == len(set(walked))
    assert all(walked.count(todo_id) == 1 for todo_id in ids(originals))
    assert set(walked) <= set(ids(originals + created))
    everything = list_todos(client, user, limit=100, sort=sort)["items"]
    # What the walk returned is in the contract's order of everything there is now.
    positions = {todo_id: n for n, todo_id in enumerate(expected_order(everything, sort))}
    assert walked == sorted(walked, key=positions.__getitem__)


# --- filters ----------------------------------------------------------------------------------


def make_filter_dataset(client: TestClient, user: ApiUser) -> list[Todo]:
    specs: list[dict[str, Any]] = [
        {"title": "Buy MILK", "priority": "high", "due_date": "2030-06-01T11:00:00Z"},
        {"title": "call mom", "description": "about the 100% discount", "completed": True},
        {"title": "count 100 items", "priority": "high", "due_date": DUE},
        {"title": "snake_case rename", "priority": "low", "due_date": "2030-06-01T13:00:00Z"},
        {"title": "one circle", "description": "Milkshake recipe", "completed": True},
        {
            "title": "plain",
            "priority": "high",
            "completed": True,
            "due_date": "2029-01-01T00:00:00Z",
        },
        {"title": "write report", "description": "use the_template", "priority": "high"},
        {"title": "50% done", "completed": False, "due_date": "2031-01-01T00:00:00+02:00"},
        {"title": "fix bug", "description": "tests fail", "priority": "low", "completed": True},
        {"title": "Vacation", "description": None, "due_date": "2030-06-01T12:00:00.000001Z"},
    ]
    return [create(client, user, **spec) for spec in specs]


def matching(todos: list[Todo], predicate: Callable[[Todo], bool]) -> list[str]:
    return expected_order([todo for todo in todos if predicate(todo)], "-created_at")


def contains(todo: Todo, text: str) -> bool:
    haystacks = [todo["title"], todo["description"] or ""]
    return any(text.lower() in haystack.lower() for haystack in haystacks)


def due(todo: Todo) -> datetime | None:
    return None if todo["due_date"] is None else datetime.fromisoformat(todo["due_date"])


DUE_AT = datetime.fromisoformat(DUE)


@pytest.mark.parametrize(
    ("params", "predicate"),
    [
        ({"completed": "true"}, lambda todo: todo["completed"]),
        ({"completed": "false"}, lambda todo: not todo["completed"]),
        ({"priority": "high"}, lambda todo: todo["priority"] == "high"),
        ({"priority": "low"}, lambda todo: todo["priority"] == "low"),
        ({"priority": "normal"}, lambda todo: todo["priority"] == "normal"),
        ({"q": "milk"}, lambda todo: contains(todo, "milk")),
        ({"q": "MiLk"}, lambda todo: contains(todo, "milk")),
        ({"q": "RECIPE"}, lambda todo: contains(todo, "recipe")),  # description only
        ({"q": "%"}, lambda todo: contains(todo, "%")),
        ({"q": "100%"}, lambda todo: contains(todo, "100%")),
        ({"q": "_"}, lambda todo: contains(todo, "_")),
        ({"q": "e_c"}, lambda todo: contains(todo, "e_c")),
        ({"q": "nothing matches this"}, lambda todo: False),
        ({"due_before": DUE}, lambda todo: due(todo) is not None and due(todo) < DUE_AT),
        ({"due_after": DUE}, lambda todo: due(todo) is not None and due(todo) > DUE_AT),
        (
            {"due_after": "2030-06-01T10:00:00Z", "due_before": "2030-06-01T14:00:00+02:00"},
            lambda todo: (
                due(todo) is not None
                and datetime.fromisoformat("2030-06-01T10:00:00Z") < due(todo) < DUE_AT
            ),
        ),
        (
            {"completed": "false", "priority": "high"},
            lambda todo: not todo["completed"] and todo["priority"] == "high",
        ),
        (
            {"completed": "true", "q": "M"},
            lambda todo: todo["completed"] and contains(todo, "m"),
        ),
        (
            {"priority": "high", "due_before": "2031-01-01T00:00:00Z", "q": "i"},
            lambda todo: (
                todo["priority"] == "high"
                and due(todo) is not None
                and due(todo) < datetime.fromisoformat("2031-01-01T00:00:00Z")
                and contains(todo, "i")
            ),
        ),
    ],
)
def test_filters(
    client: TestClient,
    user: ApiUser,
    params: dict[str, str],
    predicate: Callable[[Todo], bool],
) -> None:
    todos = make_filter_dataset(client, user)
    page = list_todos(client, user, **params)
    assert ids(page["items"]) == matching(todos, predicate)
    assert page["next_cursor"] is None


def test_filters_have_the_expected_matches(client: TestClient, user: ApiUser) -> None:
    # The table above could pass with predicates that are wrong the same way as the app.
    todos = {todo["title"]: todo["id"] for todo in make_filter_dataset(client, user)}

    def titles(**params: str) -> set[str]:
        found = ids(list_todos(client, user, **params)["items"])
        return {title for title, todo_id in todos.items() if todo_id in found}

    assert titles(q="milk") == {"Buy MILK", "one circle"}
    assert titles(q="100%") == {"call mom"}
    assert titles(q="%") == {"call mom", "50% done"}
    assert titles(q="e_c") == {"snake_case rename"}
    assert titles(q="_") == {"snake_case rename", "write report"}
    assert titles(due_before=DUE) == {"Buy MILK", "plain"}
    assert titles(due_after=DUE) == {"snake_case rename", "50% done", "Vacation"}
    assert titles(due_before="2030-06-01T14:00:00+02:00") == {"Buy MILK", "plain"}
    assert titles(due_before="2030-06-01T12:00:00") == {"Buy MILK", "plain"}  # naive is UTC
    assert titles(due_after=DUE, due_before="2030-06-01T12:00:00.000002Z") == {"Vacation"}


def test_todos_without_due_date_match_no_due_filter(client: TestClient, user: ApiUser) -> None:
    create(client, user, "no due date")
    for params in ({"due_before": "9999-12-31T00:00:00Z"}, {"due_after": "0001-01-02T00:00:00Z"}):
        assert list_todos(client, user, **params)["items"] == []


def test_q_is_case_insensitive_beyond_ascii(client: TestClient, user: ApiUser) -> None:
    todo = create(client, user, "Äpfel kaufen", description="ДОМ")
    create(client, user, "other")
    assert ids(list_todos(client, user, q="äpfel")["items"]) == [todo["id"]]
    assert ids(list_todos(client, user, q="дом")["items"]) == [todo["id"]]


@pytest.mark.parametrize(
    ("params", "predicate"),
    [
        ({"completed": "true"}, lambda todo: todo["completed"]),
        ({"completed": "false", "sort": "title"}, lambda todo: not todo["completed"]),
        ({"priority": "high", "sort": "-due_date"}, lambda todo: todo["priority"] == "high"),
        ({"q": "A", "sort": "priority"}, lambda todo: contains(todo, "a")),
        (
            {"due_after": "2000-01-01T00:00:00Z", "sort": "-updated_at"},
            lambda todo: todo["due_date"] is not None,
        ),
        (
            {"priority": "normal", "completed": "false", "sort": "due_date"},
            lambda todo: todo["priority"] == "normal" and not todo["completed"],
        ),
    ],
)
def test_walk_with_filters_returns_exactly_the_matches(
    client: TestClient,
    user: ApiUser,
    params: dict[str, str],
    predicate: Callable[[Todo], bool],
) -> None:
    todos = make_tied_dataset(client, user) + make_filter_dataset(client, user)
    sort = params.get("sort", "-created_at")
    expected = expected_order([todo for todo in todos if predicate(todo)], sort)
    assert len(expected) > 3  # more than one page
    assert ids(walk(client, user, limit=2, **params)) == expected


# --- ownership --------------------------------------------------------------------------------


def test_only_own_todos_are_listed(client: TestClient, user: ApiUser, other_user: ApiUser) -> None:
    mine = make_filter_dataset(client, user)
    theirs = make_filter_dataset(client, other_user)
    for sort in ("-created_at", "title", "due_date"):
        assert set(ids(walk(client, user, limit=4, sort=sort))) == set(ids(mine))
        assert set(ids(walk(client, other_user, limit=4, sort=sort))) == set(ids(theirs))
    for params in ({"q": "milk"}, {"completed": "true"}, {"priority": "high"}, {"due_after": DUE}):
        found = set(ids(list_todos(client, user, **params)["items"]))
        assert found
        assert found <= set(ids(mine))
        assert not found & set(ids(theirs))
