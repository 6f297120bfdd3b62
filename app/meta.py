"""The meta routes' bodies, as named schemas: generated clients get ServiceInfo and ApiInfo."""

from pydantic import BaseModel


class ServiceInfo(BaseModel):
    name: str
    version: str
    docs_url: str


class ApiInfo(BaseModel):
    name: str
    version: str
    description: str
    docs_url: str
    redoc_url: str
    openapi_url: str
