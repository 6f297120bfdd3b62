import uuid
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response, status

from app.accounts import password, throttle, users
from app.accounts.dependencies import CurrentSuperuser, CurrentUser, HasherDep, SettingsDep
from app.accounts.schemas import (
    AccountDeletion,
    PasswordChange,
    UserAdminUpdate,
    UserListQuery,
    UserPage,
    UserRead,
    UserUpdateMe,
)
from app.database import SessionDep
from app.errors import error_responses

router = APIRouter(prefix="/users", tags=["users"], responses=error_responses(401, 503))


@router.get("/me", response_model=UserRead)
async def read_me(user: CurrentUser) -> object:
    """The current user."""
    return user


@router.patch("/me", response_model=UserRead, responses=error_responses(400, 409, 413, 429))
async def update_me(
    request: Request,
    changes: UserUpdateMe,
    user: CurrentUser,
    session: SessionDep,
    hasher: HasherDep,
    settings: SettingsDep,
) -> object:
    """Change the current user's name or email (the email only with `current_password`)."""
    checker = users.Checker(hasher, settings, throttle.client_address(request))
    return await users.update_me(session, checker, user, changes)


@router.post(
    "/me/password",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,  # no body, so no content-type
    responses=error_responses(400, 413, 429),
)
async def change_password(
    request: Request,
    data: PasswordChange,
    user: CurrentUser,
    session: SessionDep,
    hasher: HasherDep,
    settings: SettingsDep,
) -> None:
    """Change the password; every existing login and access token stops working."""
    change = password.PasswordChangeAttempt(
        data.current_password, data.new_password, throttle.client_address(request)
    )
    await password.change_password(session, hasher, settings, user, change)


@router.delete(
    "/me",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=error_responses(400, 413, 429),
)
async def delete_me(
    request: Request,
    data: AccountDeletion,
    user: CurrentUser,
    session: SessionDep,
    hasher: HasherDep,
    settings: SettingsDep,
) -> None:
    """Delete the current user with all their todos and tokens (needs `current_password`)."""
    checker = users.Checker(hasher, settings, throttle.client_address(request))
    await users.delete_me(session, checker, user, data.current_password)


@router.get("", responses=error_responses(403))
async def list_users(
    query: Annotated[UserListQuery, Query()], _: CurrentSuperuser, session: SessionDep
) -> UserPage:
    """All users, oldest first, a page at a time (superusers only)."""
    return await users.list_page(session, query)


@router.patch("/{user_id}", response_model=UserRead, responses=error_responses(403, 404, 413))
async def update_user(
    user_id: Annotated[uuid.UUID, Path(description="The user's id (not a UUID: 422)")],
    changes: UserAdminUpdate,
    _: CurrentSuperuser,
    session: SessionDep,
) -> object:
    """Activate, deactivate, promote or rename a user (superusers only)."""
    return await users.admin_update(session, user_id, changes)
