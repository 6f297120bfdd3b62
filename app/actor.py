"""Who a statement acts for: the token's user and the credential generation it was issued at.

The access rule (app.accounts.access) binds both into every statement it guards; repositories take
an Actor and turn it into those parameters in one place (params), so no other code spells the
parameter names.
"""

import uuid
from dataclasses import dataclass
from typing import Any, Protocol


class _Claims(Protocol):
    @property
    def user_id(self) -> uuid.UUID: ...
    @property
    def generation(self) -> int: ...


@dataclass(frozen=True, slots=True)
class Actor:
    user_id: uuid.UUID
    generation: int

    @classmethod
    def of(cls, claims: _Claims) -> "Actor":
        return cls(claims.user_id, claims.generation)

    def params(self) -> dict[str, Any]:
        """The access rule's bind parameters (app.accounts.access.ADMITS)."""
        return {"user_id": self.user_id, "generation": self.generation}
