from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer

from app.auth.security import AccessClaims, PasswordHasher, TokenCodec
from app.config import Settings
from app.database import SessionDep
from app.errors import Forbidden, Unauthorized
from app.users import service as users
from app.users.models import User

# tokenUrl drives Swagger's Authorize dialog: it posts email and password to this endpoint.
oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token")


def get_settings_dep(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_hasher(request: Request) -> PasswordHasher:
    hasher: PasswordHasher = request.app.state.hasher
    return hasher


def get_token_codec(request: Request) -> TokenCodec:
    codec: TokenCodec = request.app.state.token_codec
    return codec


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
HasherDep = Annotated[PasswordHasher, Depends(get_hasher)]
TokenCodecDep = Annotated[TokenCodec, Depends(get_token_codec)]


def get_current_user(
    session: SessionDep, codec: TokenCodecDep, token: Annotated[str, Depends(oauth2_scheme)]
) -> User:
    claims = codec.decode_access(token)
    if claims is None:
        raise Unauthorized()
    user = users.get_by_id(session, claims.user_id)
    # A deleted or deactivated user's tokens stop working at once, not when they expire;
    # so do tokens issued before the user's last password change.
    if user is None or not user.is_active or _issued_before_password_change(claims, user):
        raise Unauthorized()
    return user


def _issued_before_password_change(claims: AccessClaims, user: User) -> bool:
    changed = user.password_changed_at
    return changed is not None and claims.issued_at < changed.timestamp()


CurrentUser = Annotated[User, Depends(get_current_user)]


def get_current_superuser(user: CurrentUser) -> User:
    if not user.is_superuser:
        raise Forbidden()
    return user


CurrentSuperuser = Annotated[User, Depends(get_current_superuser)]
