"""RFC 9457 problem details for allim's HTTP services: every error is `application/problem+json`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

PROBLEM_JSON = "application/problem+json"
# the methods a 405's `Allow` may name (RFC 9110's, and PATCH)
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE")


class Problem(Exception):
    """An error the gateway answers with a problem+json body."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str,
        *,
        type_: str = "about:blank",
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail
        self.type = type_
        self.headers = headers
        self.extra = extra


def problem_response(
    status: int,
    title: str,
    detail: str,
    type_: str = "about:blank",
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    """A problem+json response (with `headers`, such as `Retry-After` or `Allow`)."""
    body: dict[str, Any] = {"type": type_, "title": title, "status": status, "detail": detail}
    body.update(extra)
    answered = dict(headers or {})
    if status == 401:
        answered.setdefault("WWW-Authenticate", "ApiKey")
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=answered)


_LOCATIONS = frozenset({"body", "query", "path", "header", "cookie"})


def _field_name(loc: tuple[Any, ...]) -> str:
    # ("body", "buttons", 0, "name") -> "buttons[0].name"
    # only the first item says where the field is (a body field may be called "body")
    parts = list(loc[1:] if loc and loc[0] in _LOCATIONS else loc)
    name = ""
    for part in parts:
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
    return name or ".".join(str(p) for p in loc)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"field": _field_name(tuple(e.get("loc", ()))), "message": e.get("msg", "invalid")}
        for e in exc.errors()
    ]
    fields = ", ".join(sorted({e["field"] for e in errors}))
    return problem_response(
        422, "Invalid request", f"These fields are invalid: {fields}.", errors=errors
    )


async def _problem(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Problem)
    return problem_response(
        exc.status, exc.title, exc.detail, exc.type, headers=exc.headers, **exc.extra
    )


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    # the exception's headers stay: a 405's `Allow` is required (RFC 9110)
    headers = dict(exc.headers or {})
    allowed = _allowed_methods(request) if exc.status_code == 405 else ""
    if allowed:
        headers["Allow"] = allowed
    return problem_response(exc.status_code, str(exc.detail), str(exc.detail), headers=headers)


def _allowed_methods(request: Request) -> str:
    # Starlette's 405 names the methods of the first route whose path matched, but FastAPI
    # has a route per method and `Allow` must list every method of the resource: ask the
    # router which methods it would route for this path
    allowed = []
    for method in METHODS:
        scope = {**request.scope, "method": method}
        if any(route.matches(scope)[0] is Match.FULL for route in request.app.router.routes):
            allowed.append(method)
    return ", ".join(allowed)


def install(app: FastAPI) -> None:
    """Answer every error of `app` as problem+json."""
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Problem, _problem)
    app.add_exception_handler(StarletteHTTPException, _http_error)


class FieldError(BaseModel):
    """One invalid field of a request."""

    field: str
    message: str


class ProblemDetails(BaseModel):
    """An RFC 9457 problem, as every error of the gateway is answered."""

    model_config = ConfigDict(extra="allow")

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    errors: list[FieldError] | None = None
