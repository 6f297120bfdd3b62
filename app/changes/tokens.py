"""Feed tokens: where a client is in the change feed, encrypted so that only this server makes
or reads them.

A token holds `since` (a watermark: see app.changes) and when that watermark was taken; in the
middle of a pass it also holds the keyset position reached and the pass's own watermark, which
the pass's last page hands back. Those watermarks are the database's transaction counter, which
says how busy the whole cluster is: the token is AES-256-GCM-encrypted (a fresh nonce each
time) under a key derived from the app's signing key, with the user it was issued to as
associated data, so it reveals nothing and anything else (another user's, altered) is 422.

The previous release's tokens (base64url JSON, a dot, an HMAC-SHA256) are still read, so that
clients mid-sync across an upgrade go on instead of starting over; every answer hands out the
new kind. Drop the legacy path one release after this one.
"""

import base64
import binascii
import hashlib
import hmac
import json
import os
import uuid
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from app.config import Settings
from app.errors import InvalidInput
from app.pagination import storable

BAD_SINCE = "Invalid since: pass the next_token of an earlier answer, or nothing to start over"
_NONCE_BYTES = 12
_TAG_BYTES = 16
# The columns the counters are compared with are bigints: a larger number is not one of ours,
# and would overflow in the driver (a 500) if it got that far.
_BIGINT_MAX = 2**63 - 1


@dataclass(frozen=True, slots=True)
class FeedPosition:
    since: int  # changes with txid >= since are in this pass
    since_at: int  # when that watermark was taken (Unix seconds): retention is counted from it
    after: tuple[int, uuid.UUID] | None = None  # the last (txid, object_id) delivered this pass
    mark: int | None = None  # the pass's watermark: the next pass's `since`
    mark_at: int | None = None
    # What the pass before this one saw (PostgreSQL, app.changes.repository.PageRows): in a
    # pass's first token only; `mark_seen` carries this pass's along to its last page.
    seen: tuple[int, tuple[int, ...]] | None = None
    mark_seen: tuple[int, tuple[int, ...]] | None = None

    def saw(self, txid: int) -> bool:
        """Whether the pass before delivered a change with this stamp (it was visible then)."""
        if self.seen is None or not self.starts_a_pass:
            return False
        xmax, in_progress = self.seen
        return txid < xmax and txid not in in_progress

    @property
    def starts_a_pass(self) -> bool:
        return self.after is None


class ChangeTokens:
    def __init__(self, settings: Settings) -> None:
        # Derived, each for its own purpose, so the JWT key itself signs nothing but JWTs.
        key = settings.signing_key().encode()
        self._cipher = AESGCM(hashlib.sha256(b"todo-api change feed encryption\0" + key).digest())
        self._legacy_key = hashlib.sha256(b"todo-api change feed\0" + key).digest()

    def encode(self, position: FeedPosition, user_id: uuid.UUID) -> str:
        fields: dict[str, object] = {"s": position.since, "t": position.since_at}
        if position.seen is not None:
            fields["v"] = [position.seen[0], list(position.seen[1])]
        if position.after is not None:
            fields |= {"a": [position.after[0], position.after[1].hex], "m": position.mark}
            fields["mt"] = position.mark_at
            if position.mark_seen is not None:
                fields["mv"] = [position.mark_seen[0], list(position.mark_seen[1])]
        plain = json.dumps(fields, separators=(",", ":")).encode()
        nonce = os.urandom(_NONCE_BYTES)
        sealed = nonce + self._cipher.encrypt(nonce, plain, user_id.bytes)
        return base64.urlsafe_b64encode(sealed).decode().rstrip("=")

    def decode(self, token: str, user_id: uuid.UUID) -> FeedPosition:
        try:
            plain = self._legacy(token, user_id) if "." in token else self._open(token, user_id)
            return _position(storable(json.loads(plain)))
        except (binascii.Error, ValueError, KeyError, TypeError, IndexError, InvalidTag) as exc:
            raise bad_token() from exc

    def _open(self, token: str, user_id: uuid.UUID) -> bytes:
        sealed = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        if len(sealed) < _NONCE_BYTES + _TAG_BYTES:
            raise ValueError("too short to be a token")
        nonce, ciphertext = sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:]
        return self._cipher.decrypt(nonce, ciphertext, user_id.bytes)

    def _legacy(self, token: str, user_id: uuid.UUID) -> bytes:
        body, _, signature = token.partition(".")
        mac = hmac.new(self._legacy_key, user_id.bytes + body.encode(), hashlib.sha256).digest()
        expected = base64.urlsafe_b64encode(mac).decode().rstrip("=")
        if not hmac.compare_digest(signature.encode(), expected.encode()):
            raise ValueError("not signed by this server")
        return base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))


def _position(fields: dict[str, object]) -> FeedPosition:
    since, since_at = _integer(fields["s"]), _integer(fields["t"])
    seen = _seen(fields.get("v"))
    if "a" not in fields:
        return FeedPosition(since, since_at, seen=seen)
    last = fields["a"]
    if not isinstance(last, list) or len(last) != 2:
        raise ValueError("not a keyset position")
    after = (_integer(last[0]), uuid.UUID(hex=str(last[1])))
    mark, mark_at = _integer(fields["m"]), _integer(fields["mt"])
    return FeedPosition(since, since_at, after, mark, mark_at, seen, _seen(fields.get("mv")))


def _seen(value: object) -> tuple[int, tuple[int, ...]] | None:
    if value is None:
        return None
    if not isinstance(value, list) or len(value) != 2 or not isinstance(value[1], list):
        raise ValueError("not a snapshot")
    return _integer(value[0]), tuple(_integer(x) for x in value[1])


def _integer(value: object) -> int:
    if type(value) is not int or not 0 <= value <= _BIGINT_MAX:
        raise ValueError("not a non-negative 64-bit integer")
    return value


def bad_token() -> InvalidInput:
    return InvalidInput(("query", "since"), BAD_SINCE)
