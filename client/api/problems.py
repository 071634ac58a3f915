"""One error body for the whole API: RFC 9457 problem details (``application/problem+json``).

Every refusal, whether raised by a route, the key check, the request limits or request validation, answers a
:class:`Problem`; :func:`problem_responses` declares the statuses a route can answer in the OpenAPI schema, so
clients (and the schema fuzz test) can rely on the shape.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from recstack.client.api.schemas import RejectedEvent
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM_JSON = "application/problem+json"

# What each refusal means across the API; a route adds its own statuses with these descriptions.
STATUS_MEANINGS = {
    401: "no key, or an unknown or revoked one (`WWW-Authenticate: Bearer`)",
    403: "the key lacks the scope (named in `detail`), a public key is used from another origin, or acts for a "
         "user without a valid user token",
    404: "an unknown item",
    413: "the body is over the size limit (refused before it is read)",
    422: "the request does not match the schema, or the JSON holds a non-finite number or nests too deep",
    429: "the key's rate limit is reached: retry after `Retry-After` seconds",
    503: "a store the call needs is unavailable: nothing was recorded, send it again",
}


class FieldError(BaseModel):
    loc: list[str | int] = Field(description="where in the request: body, query, path or header, then the field")
    msg: str
    type: str


class Problem(BaseModel):
    """An error answer (RFC 9457)."""

    type: str = "about:blank"
    title: str = Field(description="the HTTP status phrase")
    status: int
    detail: str = Field(description="what was wrong, in words")
    errors: list[FieldError] | None = Field(None, description="each field that failed validation (422)")
    rejected: list[RejectedEvent] | None = Field(None, description="each entry of a batch that was refused")


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI declarations of ``statuses``, all answered with a :class:`Problem`."""
    return {status: {"model": Problem, "description": STATUS_MEANINGS[status],
                     "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}}
            for status in statuses}


def problem(status: int, detail: str, headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    body = Problem(title=HTTPStatus(status).phrase, status=status, detail=detail, **extra)
    return JSONResponse(body.model_dump(mode="json", exclude_none=True), status_code=status, headers=headers,
                        media_type=PROBLEM_JSON)


def _field_errors(exc: RequestValidationError) -> list[FieldError]:
    # Only where and what: the offending input itself may be megabytes long or a non-finite float that JSON
    # cannot even carry back.
    return [FieldError(loc=list(e["loc"]), msg=e["msg"], type=e["type"]) for e in exc.errors()]


async def _http_problem(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    detail = exc.detail
    if isinstance(detail, dict):  # a batch where every entry was refused: the reasons travel as `rejected`
        return problem(exc.status_code, detail["message"], exc.headers, rejected=detail["rejected"])
    return problem(exc.status_code, str(detail), exc.headers)


async def _validation_problem(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = _field_errors(exc)
    summary = "; ".join(f"{'.'.join(map(str, e.loc))}: {e.msg}" for e in errors[:5])
    return problem(422, summary or "the request does not match the schema", errors=errors)


def install(app: FastAPI) -> None:
    app.add_exception_handler(StarletteHTTPException, _http_problem)
    app.add_exception_handler(RequestValidationError, _validation_problem)
