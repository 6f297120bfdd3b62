"""Wiring that create_app() does before the settings are known, shaped by them once they are.

`app.main:app` is built at import, which reads no configuration; the settings come as the
server starts it (its lifespan). So that every route and middleware is still wired where the
app is built, and none is added after the start (issue 24), the parts whose shape is a
setting defer only that shape:

- SettingsMiddleware: middleware whose options are settings (CORS, the request context),
  built from app.state.settings for the first request, which comes after the lifespan set it.
- SwitchableRoute: a route a setting may turn off (GET /metrics, which gunicorn's master serves
  instead with METRICS_PORT); turned off, this app answers as if it did not exist.
"""

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send

from app.config import Settings

# Wraps the app beneath it in the middleware the settings ask for; returns the outermost.
MiddlewareBuilder = Callable[[ASGIApp, Settings], ASGIApp]


class SettingsMiddleware:
    def __init__(self, app: ASGIApp, build: MiddlewareBuilder) -> None:
        self.app = app
        self.build = build
        self.stack: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":  # the lifespan reads the settings: it needs none
            await self.app(scope, receive, send)
            return
        stack = self.stack
        if stack is None:
            # Starlette puts the application in every scope; its lifespan has set the settings
            # before the server lets any request through. Two first requests at once may both
            # build: the same middleware from the same settings, and one of them is kept.
            stack = self.stack = self.build(self.app, scope["app"].state.settings)
        await stack(scope, receive, send)


class SwitchableRoute(APIRoute):
    """A route served unless switch(False): then it matches nothing (a 404 like any unknown
    path, counted as unmatched) and leaves the OpenAPI document."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.served = True

    def switch(self, served: bool) -> None:
        self.served = self.include_in_schema = served

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if not self.served:
            return Match.NONE, {}
        return super().matches(scope)


def configure(app: FastAPI, settings: Settings) -> None:
    """What the settings decide that is not wiring: title, version, whether /metrics is here."""
    app.title, app.version = settings.project_name, settings.version
    app.description = settings.description
    app.state.settings = settings
    for route in app.router.routes:
        if isinstance(route, SwitchableRoute):  # /metrics: gunicorn's master serves them
            route.switch(settings.metrics_port is None)
