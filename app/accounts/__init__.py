"""Accounts: users, their credentials, logins and tokens, and the rule that a token may act.

Imports go one way: todos, lists and changes use this package (the access rule in access.py,
the token's claims from dependencies.py); nothing here imports them, and inside it no two
modules import each other (scripts/check_imports.py, in `make lint`).

- models.py: the tables (users, logins, refresh_tokens, login_failures, device_tokens).
- schemas.py: request and response bodies (the password rule itself: app.passwords).
- security.py: hashing and token primitives, no database. access.py: the access rule;
  authorization.py: why a statement under it found nothing (401 or not).
- service.py: sign-up, login, the current user; rotation.py: refresh and logout.
- users.py: a user's own account and the superusers' administration of everyone's;
  password.py: the current password checked before a change that needs it.
- devices.py, throttle.py: device tokens and the throttling of failed password checks.
- repository.py (users, and the access rule's own check), login_repository.py (logins, their
  refresh tokens, device tokens), throttle_repository.py (failed password checks): every
  statement, lock and bind parameter of the package; the modules above keep the decisions.
- auth_router.py (/auth) and users_router.py (/users): the routes; dependencies.py: theirs.
"""
