"""What a 405's `Allow` must say: every method of every route whose path matches.

Starlette answers a method its router cannot serve from the first route whose path matched
(GET /todos/{todo_id}, so `Allow: GET`), although PUT, PATCH and DELETE live on sibling routes
with the same path. The app keeps a table of every route's path and methods instead, and the
405 handler (app.errors) asks it.
"""

import re
from collections.abc import Iterable

from starlette.convertors import StringConvertor, register_url_convertor
from starlette.routing import compile_path

# RFC 9110's order, the one clients and docs list them in.
_ORDER = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


class MethodTable:
    def __init__(self) -> None:
        self._routes: list[tuple[re.Pattern[str], frozenset[str]]] = []

    def add(self, path: str, methods: Iterable[str]) -> None:
        regex, _, _ = compile_path(path)
        self._routes.append((regex, frozenset(methods)))

    def allowed(self, path: str) -> str:
        """The `Allow` header for a path: every method any route with this path serves."""
        methods = {m for regex, found in self._routes if regex.match(path) for m in found}
        return ", ".join(sorted(methods, key=lambda m: _ORDER.index(m) if m in _ORDER else 99))


class ItemIdConvertor(StringConvertor):
    """A collection's item id: any segment but the collection's fixed sub-paths (/stats), so
    PUT /todos/stats is the stats resource's 405, not a todo id that is not a UUID (422).
    Anything else reaches the route, where an id that is not a UUID is still a 422."""

    regex = "(?!stats$)[^/]+"


register_url_convertor("item_id", ItemIdConvertor())
