"""Rate limiting as pure ASGI middleware: it decides before any route, dependency or database
work runs, so a refused request does nothing, and an allowed one pays no extra round trip to
the database: the key comes from the access token's signature alone (whether its user may
still act is the statement's business, as for every request).

The claims it decodes are kept in the request's state for app.accounts.dependencies.get_claims,
so the token is decoded once per request.
"""

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.accounts.security import ACCESS_CLAIMS, AccessClaims, TokenCodec
from app.accounts.throttle import address_bucket
from app.errors import TooManyRequests
from app.ratelimit.limiter import Limiter


class RateLimitMiddleware:
    def __init__(self, app: ASGIApp, prefix: str) -> None:
        self.app = app
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(self.prefix):
            await self.app(scope, receive, send)
            return
        state = scope["app"].state
        limiter: Limiter | None = getattr(state, "limiter", None)
        if limiter is None:  # RATE_LIMIT_ENABLED=false
            await self.app(scope, receive, send)
            return
        claims = _claims(scope, state.token_codec)
        if claims is not None:
            verdict = await limiter.check(limiter.user, str(claims.user_id))
        else:
            client = scope.get("client")
            # The address uvicorn's proxy-headers support settled on (FORWARDED_ALLOW_IPS),
            # counted as the login throttle counts it: an IPv6 address by its /64.
            verdict = await limiter.check(
                limiter.address, address_bucket(client[0] if client else "")
            )
        if verdict is None:  # the storage could not say: served, uncounted, no fields
            await self.app(scope, receive, send)
            return
        fields = verdict.headers()
        if not verdict.allowed:
            body = json.dumps({"detail": TooManyRequests.detail}).encode()
            headers = [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *fields,
            ]
            await send({"type": "http.response.start", "status": 429, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return

        async def send_with_fields(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), *fields]}
            await send(message)

        await self.app(scope, receive, send_with_fields)


def _claims(scope: Scope, codec: TokenCodec) -> AccessClaims | None:
    token = _bearer_token(scope)
    if token is None:
        return None
    claims = codec.decode_access(token)
    if claims is not None:
        scope.setdefault("state", {})[ACCESS_CLAIMS] = (token, claims)
    return claims


def _bearer_token(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token if scheme.lower() == "bearer" and token else None
    return None
