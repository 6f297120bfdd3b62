from fastapi import APIRouter, status

from app.auth.dependencies import CurrentUser
from app.database import SessionDep
from app.users import service
from app.users.schemas import UserRead, UserUpdateMe

router = APIRouter(prefix="/users", tags=["users"])


@router.get("/me", response_model=UserRead)
def read_me(user: CurrentUser) -> object:
    """The current user."""
    return user


@router.patch("/me", response_model=UserRead)
def update_me(changes: UserUpdateMe, user: CurrentUser, session: SessionDep) -> object:
    """Change the current user's name or email."""
    return service.update_me(session, user, changes)


@router.delete("/me", status_code=status.HTTP_204_NO_CONTENT)
def delete_me(user: CurrentUser, session: SessionDep) -> None:
    """Delete the current user with all their todos and tokens."""
    service.delete_user(session, user)
