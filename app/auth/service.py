import uuid
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from app.auth.models import RefreshToken
from app.auth.schemas import MAX_PASSWORD_BYTES, TokenPair, UserRegister
from app.auth.security import PasswordHasher, TokenCodec, hash_refresh_token, new_refresh_token
from app.config import Settings
from app.errors import Forbidden, InvalidInput, Unauthorized
from app.users import service as users
from app.users.models import User
from app.validation import NUL_MESSAGE

BAD_CREDENTIALS = "Incorrect email or password"
PASSWORD_TOO_LONG = (
    f"Password must be at most {MAX_PASSWORD_BYTES} bytes long in UTF-8 (bcrypt's limit)"
)


def register(session: Session, hasher: PasswordHasher, data: UserRegister) -> User:
    # Hash before the first query, so no transaction is open during the slow part.
    hashed = hasher.hash(data.password)
    return users.create_user(
        session, email=data.email, hashed_password=hashed, full_name=data.full_name
    )


def authenticate(session: Session, hasher: PasswordHasher, email: str, password: str) -> User:
    if len(password.encode()) > MAX_PASSWORD_BYTES:
        raise InvalidInput(("body", "password"), PASSWORD_TOO_LONG)
    for field, value in (("username", email), ("password", password)):
        if "\x00" in value:
            raise InvalidInput(("body", field), NUL_MESSAGE)
    user = users.get_by_email(session, email)
    # Unknown email and wrong password: the same bcrypt cost, the same answer.
    if not hasher.verify(password, user.hashed_password if user else None) or user is None:
        raise Unauthorized(BAD_CREDENTIALS)
    if not user.is_active:
        raise Forbidden("Inactive user")
    return user


def issue_tokens(session: Session, codec: TokenCodec, settings: Settings, user: User) -> TokenPair:
    now = datetime.now(UTC)
    refresh = new_refresh_token()
    session.add(
        RefreshToken(
            user_id=user.id,
            family_id=uuid.uuid4(),
            token_hash=hash_refresh_token(refresh),
            created_at=now,
            expires_at=now + settings.refresh_token_ttl,
        )
    )
    session.flush()
    return TokenPair(
        access_token=codec.encode_access(user.id, now),
        expires_in=int(codec.access_ttl.total_seconds()),
        refresh_token=refresh,
    )
