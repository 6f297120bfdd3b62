from typing import Annotated

from fastapi import APIRouter, Form, Request, Response, status

from app.accounts import rotation, service, throttle
from app.accounts.dependencies import HasherDep, SettingsDep, TokenCodecDep
from app.accounts.schemas import (
    LoginForm,
    LoginTokens,
    RefreshRequest,
    TokenPair,
    UserRead,
    UserRegister,
)
from app.database import SessionDep
from app.errors import Forbidden, error_responses

router = APIRouter(prefix="/auth", tags=["auth"], responses=error_responses(413, 503))


@router.post(
    "/register",
    status_code=status.HTTP_201_CREATED,
    response_model=UserRead,
    responses=error_responses(403, 409),
)
async def register(
    data: UserRegister, session: SessionDep, hasher: HasherDep, settings: SettingsDep
) -> object:
    """Create an account."""
    if not settings.allow_signup:
        raise Forbidden("Sign-up is disabled")
    return await service.register(session, hasher, data)


@router.post("/token", responses=error_responses(401, 403, 429))
async def login(
    request: Request,
    form: Annotated[LoginForm, Form()],
    session: SessionDep,
    hasher: HasherDep,
    codec: TokenCodecDep,
    settings: SettingsDep,
) -> LoginTokens:
    """Log in with email (as `username`) and password; OAuth2 password grant."""
    attempt = service.LoginAttempt(
        form.username, form.password, throttle.client_address(request), form.device_token
    )
    return await service.login(session, hasher, codec, settings, attempt)


@router.post("/refresh", responses=error_responses(401))
async def refresh(
    data: RefreshRequest, session: SessionDep, codec: TokenCodecDep, settings: SettingsDep
) -> TokenPair:
    """Exchange a refresh token for a new pair; presented again past the grace window: reuse."""
    return await rotation.refresh(session, codec, settings, data.refresh_token)


@router.post(
    "/logout",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,  # no content-type
)
async def logout(data: RefreshRequest, session: SessionDep, settings: SettingsDep) -> None:
    """End the login a refresh token belongs to (no bearer token needed)."""
    await rotation.logout(session, settings, data.refresh_token)
