"""What clients may keep (API.md "Caching (v1.2)"): reads of a todo, a list, or a page of
either are `private, no-cache` with an ETag, so a browser or a private HTTP cache keeps them and
revalidates each use (If-None-Match → 304, no body). Everything else under /api/v1 is no-store
(app.middleware adds it to any response that does not say otherwise).

There is no cache of todo data on the server: every read is one indexed statement that already
carries the access rule, and a cache shared by the replicas would need invalidation on every
write for no measurable gain (README, "Caching").
"""

import hashlib

from fastapi import Response, status
from pydantic import BaseModel

from app.etags import none_match

REVALIDATE = "private, no-cache"
NOT_MODIFIED = {"description": "Not modified: If-None-Match names the current ETag"}


def page_etag(body: bytes) -> str:
    """A page's ETag: weak (another serialisation of the same page may differ byte for byte),
    a digest of the page as sent, so it changes whenever an item on it, their order, or the
    next cursor (whether there is a next page, and where) changes."""
    return f'W/"{hashlib.blake2b(body, digest_size=16).hexdigest()}"'


def page_response(page: BaseModel, if_none_match: str | None) -> Response:
    """The page, serialised once here (its digest is the ETag), or 304 when the client has it."""
    body = page.__pydantic_serializer__.to_json(page)
    etag = page_etag(body)
    headers = {"ETag": etag, "Cache-Control": REVALIDATE}
    if none_match(if_none_match, etag):
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers)
    return Response(body, status.HTTP_200_OK, headers, "application/json")


def not_modified(etag: str) -> Response:
    return Response(
        status_code=status.HTTP_304_NOT_MODIFIED,
        headers={"ETag": etag, "Cache-Control": REVALIDATE},
    )


def revalidate(response: Response, etag: str) -> None:
    """A read the client may keep and must revalidate."""
    response.headers["ETag"] = etag
    response.headers["Cache-Control"] = REVALIDATE
