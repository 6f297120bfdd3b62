import uuid

from sqlalchemy.orm import Session

from app.auth import throttle, tokens
from app.auth.schemas import MAX_PASSWORD_BYTES, TokenPair, UserRegister
from app.auth.security import PasswordHasher, TokenCodec
from app.config import Settings
from app.database import utcnow
from app.errors import Forbidden, InvalidInput, Unauthorized
from app.users import service as users
from app.users.models import User
from app.validation import NUL_MESSAGE

BAD_CREDENTIALS = "Incorrect email or password"
BAD_REFRESH_TOKEN = "Invalid or expired refresh token"  # noqa: S105 - a message
PASSWORD_TOO_LONG = (
    f"Password must be at most {MAX_PASSWORD_BYTES} bytes long in UTF-8 (bcrypt's limit)"
)


class InvalidCredentials(Unauthorized):
    detail = BAD_CREDENTIALS
    persist_changes = True  # the recorded failure must outlive the 401


class RefreshTokenReused(Unauthorized):
    detail = BAD_REFRESH_TOKEN
    persist_changes = True  # the revoked family must outlive the 401


def register(session: Session, hasher: PasswordHasher, data: UserRegister) -> User:
    # Hash before the first query, so no transaction is open during the slow part.
    hashed = hasher.hash(data.password)
    return users.create_user(
        session, email=data.email, hashed_password=hashed, full_name=data.full_name
    )


def login(
    session: Session, hasher: PasswordHasher, settings: Settings, username: str, password: str
) -> User:
    _check_login_input(username, password)
    email, now = username.lower(), utcnow()
    throttle.lock_email(session, email)
    throttle.check(session, settings, email, now)
    user = users.get_by_email(session, email)
    # Unknown email and wrong password: the same bcrypt cost, the same answer.
    if not hasher.verify(password, user.hashed_password if user else None) or user is None:
        throttle.record_failure(session, settings, email, now)
        raise InvalidCredentials()
    throttle.clear(session, email)
    if not user.is_active:
        raise Forbidden("Inactive user")
    return user


def _check_login_input(username: str, password: str) -> None:
    if len(password.encode()) > MAX_PASSWORD_BYTES:
        raise InvalidInput(("body", "password"), PASSWORD_TOO_LONG)
    for field, value in (("username", username), ("password", password)):
        if "\x00" in value:
            raise InvalidInput(("body", field), NUL_MESSAGE)


def issue_tokens(
    session: Session,
    codec: TokenCodec,
    settings: Settings,
    user: User,
    family_id: uuid.UUID | None = None,
) -> TokenPair:
    """A new access token and a refresh token; a new login starts a new family."""
    now = utcnow()
    refresh_token = tokens.create(
        session, user.id, family_id or uuid.uuid4(), now, now + settings.refresh_token_ttl
    )
    session.flush()
    return TokenPair(
        access_token=codec.encode_access(user.id, now),
        expires_in=int(codec.access_ttl.total_seconds()),
        refresh_token=refresh_token,
    )


def refresh(session: Session, codec: TokenCodec, settings: Settings, raw_token: str) -> TokenPair:
    """Rotate: the presented token stops working and a new pair is issued in its family."""
    now = utcnow()
    token = tokens.find(session, raw_token, for_update=True)
    if token is None or token.revoked_at is not None:
        raise Unauthorized(BAD_REFRESH_TOKEN)
    if token.rotated_at is not None:
        # Someone presents a token that was already exchanged: either the client or a thief
        # holds a stale copy. We cannot tell which, so that whole login ends.
        tokens.revoke_family(session, token.family_id, now)
        raise RefreshTokenReused()
    user = session.get(User, token.user_id)
    if token.expires_at <= now or user is None or not user.is_active:
        raise Unauthorized(BAD_REFRESH_TOKEN)
    token.rotated_at = now
    return issue_tokens(session, codec, settings, user, family_id=token.family_id)


def logout(session: Session, raw_token: str) -> None:
    """End the login the token belongs to; unknown or dead tokens are fine (nothing to do)."""
    token = tokens.find(session, raw_token)
    if token is not None:
        tokens.revoke_family(session, token.family_id, utcnow())
