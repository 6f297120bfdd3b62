"""Accounts: users, their credentials, logins and tokens, and the rule that a token may act.

Imports go one way: todos, lists and changes use this package (the access rule in access.py,
the token's claims from dependencies.py); nothing here imports them, and inside it no two
modules import each other (scripts/check_imports.py, in `make lint`).

- models.py: the tables (users, logins, refresh_tokens, login_failures, device_tokens).
- schemas.py: request and response bodies (the password rule itself: app.passwords).
- security.py: hashing and token primitives, no database. access.py: the access rule.
- service.py: sign-up, login, the current user; rotation.py: refresh and logout.
- users.py: a user's own account and the superusers' administration of everyone's;
  password.py: the current password checked before a change that needs it.
- logins.py, tokens.py, devices.py, throttle.py: the rows behind a login, its refresh tokens,
  device tokens and failed password checks.
- auth_router.py (/auth) and users_router.py (/users): the routes; dependencies.py: theirs.
"""
