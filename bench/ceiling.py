"""The ceiling: the least a FastAPI service can do per request, under the same gunicorn setup.

One async route, no auth, no database, no middleware. Every scenario is reported as a ratio
of this app's requests per second, measured in the same run.
"""

from fastapi import FastAPI

app = FastAPI()


@app.get("/")
async def ok() -> dict[str, str]:
    return {"status": "ok"}
