"""Every error the web app answers is JSON, `{"error": "..."}`, with a 4xx status (500 only for
bugs, without the traceback): the exception routes raise, its OpenAPI description, and the
handlers (`EXCEPTION_HANDLERS`) that turn FastAPI's, Starlette's and the library's errors into
that shape."""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import LookalikeError

log = logging.getLogger("lookalike.web")


class HTTPError(Exception):
    """A request that cannot be answered: becomes `{"error": message}` with `status`."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


class ErrorAnswer(BaseModel):
    """Every refusal: one sentence for people (422s also list each problem in `detail`)."""

    error: str


def refusals(**reasons: str) -> dict:
    """OpenAPI `responses` for error statuses, given as s404="why", ..."""
    return {int(code[1:]): {"model": ErrorAnswer, "description": why}
            for code, why in reasons.items()}


def error_response(status: int, message: str, **extra) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status)


async def _http_error(request: Request, exc: HTTPError) -> JSONResponse:
    return error_response(exc.status, exc.message)


async def _starlette_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    message = exc.detail if isinstance(exc.detail, str) else "request refused"
    if exc.status_code == 404:
        message = f"not found: {request.url.path}"
    return error_response(exc.status_code, message)


async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
    problems = exc.errors()
    first = problems[0] if problems else {}
    where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query",
                                                                        "path", "form"))
    text = first.get("msg", "invalid request")
    message = f"{where}: {text}" if where else text
    detail = [{"loc": list(p.get("loc", ())), "msg": p.get("msg"),
               "type": p.get("type", "value_error")} for p in problems]
    return error_response(422, message, detail=detail)


async def _user_error(request: Request, exc: LookalikeError) -> JSONResponse:
    return error_response(400, str(exc))


async def _bug(request: Request, exc: Exception) -> JSONResponse:
    log.error("error while answering %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal error; the server's log has the details")


_Handler = Callable[[Request, Any], Coroutine[Any, Any, Response]]

#: For `FastAPI(exception_handlers=...)`.
EXCEPTION_HANDLERS: dict[int | type[Exception], _Handler] = {
    HTTPError: _http_error, StarletteHTTPException: _starlette_error,
    RequestValidationError: _invalid, LookalikeError: _user_error, Exception: _bug}
