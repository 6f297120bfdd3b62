"""ETags are versions: a strong tag "<n>" per stored version of a resource."""

import re
from typing import Any

from sqlalchemy import ColumnElement, bindparam

from app.errors import BadRequest

_OUR_TAG = re.compile(r'"(0|[1-9][0-9]{0,9})"')
# RFC 9110 §8.8.3: entity-tag = [ "W/" ] DQUOTE *etagc DQUOTE, etagc = %x21 / %x23-7E / obs-text.
_ENTITY_TAG = re.compile(r'(W/)?"[\x21\x23-\x7e\x80-\xff]*"')
NOT_AN_ENTITY_TAG = (
    'If-Match must be "*" or entity-tags, each in double quotes (an ETag as sent: "7")'
)


def matching_versions(if_match: str | None) -> list[int] | None:
    """The versions an If-Match header admits, or None when any version will do (no header,
    or *). Strong comparison: weak tags (W/"...") and tags we never made match nothing.
    A header that is not a list of entity-tags (7 unquoted, null) is a 400: a client that sent
    the version bare would otherwise get 412 for ever, however fresh its version."""
    if if_match is None:
        return None
    tags = [tag.strip() for tag in if_match.split(",")]
    if tags == ["*"]:
        return None
    if not all(_ENTITY_TAG.fullmatch(tag) for tag in tags):
        raise BadRequest(NOT_AN_ENTITY_TAG)
    versions = (_OUR_TAG.fullmatch(tag) for tag in tags)
    return [int(m[1]) for m in versions if m and int(m[1]) <= 2**31 - 1]


def version_matches(version: Any, if_match: bool) -> tuple[ColumnElement[bool], ...]:
    """The If-Match condition of a write statement: the row's version is one of the
    `versions` parameter's (matching_versions); nothing without If-Match."""
    return (version.in_(bindparam("versions", expanding=True)),) if if_match else ()


def none_match(if_none_match: str | None, etag: str) -> bool:
    """Whether If-None-Match names `etag`: weak comparison (W/ ignored on both sides), and *
    matches any current representation (RFC 9110 §13.1.2)."""
    if if_none_match is None:
        return False
    tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return "*" in tags or etag.removeprefix("W/") in tags
