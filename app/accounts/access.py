"""Whether an access token's user may still act, written once, as SQL.

The token's user must exist, be active, and still be at the credential generation the token
was issued for: a password change or a deactivation moves the generation on, so every token
from before it stops working at once, whatever the clocks of the replicas say. Being SQL, the
rule goes into the very statement that reads or writes the user's data, so checking it costs
no round trip of its own; a statement that finds nothing asks app.accounts.authorization.authorize
why (docs/adr/0002-access-rule-in-every-statement.md).
"""

from sqlalchemy import and_, bindparam, exists

from app.accounts.models import User

# Parameters: user_id and generation, from app.actor.Actor.params().
ADMITS = and_(
    User.id == bindparam("user_id"),
    User.is_active,
    User.credential_generation == bindparam("generation"),
)

ADMITTED = exists().where(ADMITS)
