import dataclasses
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts import devices, login_repository, repository, throttle, users
from app.accounts.models import User, UserRecord
from app.accounts.schemas import LoginTokens, TokenPair, UserRegister
from app.accounts.security import (
    AccessClaims,
    PasswordHasher,
    TokenCodec,
    hash_refresh_token,
    new_refresh_token,
)
from app.actor import Actor
from app.config import Settings
from app.database import transaction, utcnow
from app.errors import Forbidden, InvalidInput, Unauthorized
from app.passwords import MAX_PASSWORD_BYTES
from app.validation import NUL_MESSAGE

BAD_CREDENTIALS = "Incorrect email or password"
MAX_EMAIL_LENGTH = 320  # the longest address RFC 5321 allows, and the column's size
USERNAME_TOO_LONG = f"The username (an email) must be at most {MAX_EMAIL_LENGTH} characters"
PASSWORD_TOO_LONG = (
    f"Password must be at most {MAX_PASSWORD_BYTES} bytes long in UTF-8 (bcrypt's limit)"
)


@dataclass(frozen=True, slots=True)
class LoginAttempt:
    username: str
    password: str
    address: str  # the client's, for the throttle (app.accounts.throttle.client_address)
    device_token: str | None = None  # from an earlier login (app.accounts.devices)


async def current_user(session: AsyncSession, claims: AccessClaims) -> UserRecord:
    user = await repository.admitted(session, Actor.of(claims))
    if user is None:
        raise Unauthorized()
    return user


async def register(session: AsyncSession, hasher: PasswordHasher, data: UserRegister) -> User:
    # Hash before the first query, so no connection is held during the slow part.
    hashed = await hasher.hash_async(data.password)
    return await users.create_user(
        session, email=data.email, hashed_password=hashed, full_name=data.full_name
    )


async def login(
    session: AsyncSession,
    hasher: PasswordHasher,
    codec: TokenCodec,
    settings: Settings,
    credentials: LoginAttempt,
) -> LoginTokens:
    _check_login_input(credentials.username, credentials.password)
    email = credentials.username.lower()
    user = await repository.by_email(session, email)
    key = throttle.Key(email, user.id if user else None, credentials.address)
    if user is not None and credentials.device_token:
        device = await devices.find(session, credentials.device_token, user.id, utcnow())
        key = dataclasses.replace(key, device_id=device)
    # A throttled account or address is turned away before any bcrypt work.
    await throttle.check(session, settings, key, utcnow())
    # Neither a lock nor a database connection is held through bcrypt: commit() ends the
    # autocommit transaction and gives its connection back to the pool.
    await session.commit()
    # Unknown email and wrong password: the same bcrypt cost, the same answer.
    stored = user.hashed_password if user else None
    valid = await hasher.verify_async(credentials.password, stored) and user is not None
    async with transaction(session):
        # The verdict is given under the account's lock and counts the failures recorded
        # meanwhile: however many guesses arrive at once, no more than the limit get an
        # answer but 429.
        now = utcnow()
        await throttle.lock_account(session, key)
        await throttle.check(session, settings, key, now)
        if not valid or user is None:
            await throttle.record_failure(session, settings, key, now)
        elif not user.is_active:
            raise Forbidden("Inactive user")
        else:
            # The hash was verified with no lock held: a password change, deactivation or
            # deletion may have ended it meanwhile. Tokens go out only for the generation
            # the verified hash belonged to, and only while it is still the user's.
            if await repository.lock_generation(session, user.id) != user.credential_generation:
                raise Unauthorized(BAD_CREDENTIALS)
            await throttle.clear(session, key)
            pair = await _issue_tokens(
                session, codec, settings, user.id, user.credential_generation
            )
            device_token = await devices.issue(session, user.id, key.device_id, now)
            return LoginTokens(**pair.model_dump(), device_token=device_token)
    # Only now, with the failure committed: it must count even though the answer is an error.
    raise Unauthorized(BAD_CREDENTIALS)


def _check_login_input(username: str, password: str) -> None:
    # Before anything is stored or hashed: a failure records the username.
    if len(username) > MAX_EMAIL_LENGTH:
        raise InvalidInput(("body", "username"), USERNAME_TOO_LONG)
    if len(password.encode()) > MAX_PASSWORD_BYTES:
        raise InvalidInput(("body", "password"), PASSWORD_TOO_LONG)
    for field, value in (("username", username), ("password", password)):
        if "\x00" in value:
            raise InvalidInput(("body", field), NUL_MESSAGE)


async def _issue_tokens(
    session: AsyncSession,
    codec: TokenCodec,
    settings: Settings,
    user_id: uuid.UUID,
    generation: int,
) -> TokenPair:
    """A new login: its row, and its first pair for the user's credential generation."""
    now = utcnow()
    ends = now + settings.login_lifetime
    login_id = await login_repository.start(session, user_id, now, ends)
    return await issue_pair(session, codec, settings, Issue(user_id, generation, login_id, ends))


@dataclass(frozen=True, slots=True)
class Issue:
    """What a new pair is issued for: a user's credential generation, in one login."""

    user_id: uuid.UUID
    generation: int
    login_id: uuid.UUID
    login_ends: datetime


async def issue_pair(
    session: AsyncSession, codec: TokenCodec, settings: Settings, issue: Issue
) -> TokenPair:
    """A new access token and a refresh token of the login, which lives
    REFRESH_TOKEN_EXPIRE_DAYS but never past the login's end."""
    now = utcnow()
    # Only its hash is stored: the raw token exists in the response alone.
    refresh_token = new_refresh_token()
    await login_repository.add_token(
        session,
        login_repository.NewToken(issue.user_id, issue.login_id, issue.generation),
        hash_refresh_token(refresh_token),
        now,
        min(now + settings.refresh_token_ttl, issue.login_ends),
    )
    return TokenPair(
        access_token=codec.encode_access(issue.user_id, issue.generation, now),
        expires_in=int(codec.access_ttl.total_seconds()),
        refresh_token=refresh_token,
    )
