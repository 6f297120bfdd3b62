"""Feed tokens: where a client is in the change feed, signed so that only this server makes them.

A token holds `since` (a watermark: see app.changes) and when that watermark was taken; in the
middle of a pass it also holds the keyset position reached and the pass's own watermark, which
the pass's last page hands back. It is HMAC-SHA256-signed with a key derived from the app's
signing key, over the token and the user it was issued to: anything else is 422.
"""

import base64
import binascii
import hashlib
import hmac
import json
import uuid
from dataclasses import dataclass

from app.config import Settings
from app.errors import InvalidInput

BAD_SINCE = "Invalid since: pass the next_token of an earlier answer, or nothing to start over"


@dataclass(frozen=True, slots=True)
class FeedPosition:
    since: int  # changes with txid >= since are in this pass
    since_at: int  # when that watermark was taken (Unix seconds): retention is counted from it
    after: tuple[int, uuid.UUID] | None = None  # the last (txid, object_id) delivered this pass
    mark: int | None = None  # the pass's watermark: the next pass's `since`
    mark_at: int | None = None

    @property
    def starts_a_pass(self) -> bool:
        return self.after is None


class ChangeTokens:
    def __init__(self, settings: Settings) -> None:
        # Derived, so the JWT key itself signs nothing but JWTs.
        self._key = hashlib.sha256(
            b"todo-api change feed\0" + settings.signing_key().encode()
        ).digest()

    def encode(self, position: FeedPosition, user_id: uuid.UUID) -> str:
        fields: dict[str, object] = {"s": position.since, "t": position.since_at}
        if position.after is not None:
            fields |= {"a": [position.after[0], position.after[1].hex], "m": position.mark}
            fields["mt"] = position.mark_at
        payload = base64.urlsafe_b64encode(json.dumps(fields, separators=(",", ":")).encode())
        body = payload.decode().rstrip("=")
        return f"{body}.{self._signature(body, user_id)}"

    def decode(self, token: str, user_id: uuid.UUID) -> FeedPosition:
        body, _, signature = token.partition(".")
        if not hmac.compare_digest(signature.encode(), self._signature(body, user_id).encode()):
            raise bad_token()
        try:
            fields = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
            return _position(fields)
        except (binascii.Error, ValueError, KeyError, TypeError, IndexError) as exc:
            raise bad_token() from exc

    def _signature(self, body: str, user_id: uuid.UUID) -> str:
        mac = hmac.new(self._key, user_id.bytes + body.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).decode().rstrip("=")


def _position(fields: dict[str, object]) -> FeedPosition:
    since, since_at = _integer(fields["s"]), _integer(fields["t"])
    if "a" not in fields:
        return FeedPosition(since, since_at)
    last = fields["a"]
    if not isinstance(last, list) or len(last) != 2:
        raise ValueError("not a keyset position")
    after = (_integer(last[0]), uuid.UUID(hex=str(last[1])))
    return FeedPosition(since, since_at, after, _integer(fields["m"]), _integer(fields["mt"]))


def _integer(value: object) -> int:
    if type(value) is not int or value < 0:
        raise ValueError("not a non-negative integer")
    return value


def bad_token() -> InvalidInput:
    return InvalidInput(("query", "since"), BAD_SINCE)
