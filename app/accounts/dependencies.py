from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer

from app.accounts import service
from app.accounts.models import UserRecord
from app.accounts.security import AccessClaims, PasswordHasher, TokenCodec, cached_claims
from app.config import Settings
from app.database import SessionDep
from app.errors import Forbidden, Unauthorized

# tokenUrl drives Swagger's Authorize dialog: it posts email and password to this endpoint.
oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token")

# The accessors below are coroutines (they do no I/O): FastAPI would hand a plain function
# to the thread pool, a round trip between threads on every request for an attribute read.


async def get_settings_dep(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_hasher(request: Request) -> PasswordHasher:
    hasher: PasswordHasher = request.app.state.hasher
    return hasher


async def get_token_codec(request: Request) -> TokenCodec:
    codec: TokenCodec = request.app.state.token_codec
    return codec


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
HasherDep = Annotated[PasswordHasher, Depends(get_hasher)]
TokenCodecDep = Annotated[TokenCodec, Depends(get_token_codec)]


async def get_claims(
    request: Request, token: Annotated[str, Depends(oauth2_scheme)]
) -> AccessClaims:
    """A valid, signed, unexpired access token's claims. Whether its user may still act is
    checked in the statement that reads or writes its data (app.accounts.access)."""
    # The rate limiter decoded it already, before the route (app.ratelimit): once is enough.
    claims = cached_claims(request.scope, token)
    if claims is None:
        codec: TokenCodec = request.app.state.token_codec  # read directly: on every request
        claims = codec.decode_access(token)
    if claims is None:
        raise Unauthorized()
    return claims


Claims = Annotated[AccessClaims, Depends(get_claims)]


async def get_current_user(claims: Claims, session: SessionDep) -> UserRecord:
    return await service.current_user(session, claims)


CurrentUser = Annotated[UserRecord, Depends(get_current_user)]


async def get_current_superuser(user: CurrentUser) -> UserRecord:
    if not user.is_superuser:
        raise Forbidden()
    return user


CurrentSuperuser = Annotated[UserRecord, Depends(get_current_superuser)]
