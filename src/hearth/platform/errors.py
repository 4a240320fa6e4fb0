"""Errors in OpenAI's shape: {"error": {"message", "type", "param", "code"}} on every route."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from hearth.platform.kit.openapi import allowed_methods

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    409: "conflict_error",
    413: "request_too_large",
    422: "invalid_request_error",
    429: "rate_limit_error",
    500: "server_error",
    502: "upstream_error",
    503: "service_unavailable",
    504: "timeout_error",
}


class HearthError(Exception):
    """An error a client should see, with its HTTP status and OpenAI error fields."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        type: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.type = type or _TYPES.get(status, "server_error")
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def response(self) -> Response:
        return Response(
            orjson.dumps(self.body()),
            status_code=self.status,
            media_type="application/json",
            headers=self.headers,
        )


def bad_request(message: str, *, param: str | None = None, code: str | None = None) -> HearthError:
    return HearthError(400, message, param=param, code=code)


def not_found(message: str, *, param: str | None = None, code: str = "not_found") -> HearthError:
    return HearthError(404, message, param=param, code=code)


def invalid(errors: Sequence[Any]) -> HearthError:
    """422 naming the first invalid field, from pydantic's (or FastAPI's) list of validation errors."""
    first = errors[0] if errors else {}
    loc = [str(p) for p in first.get("loc", ()) if p != "body"]
    param = ".".join(loc) or None
    msg = first.get("msg", "invalid request")
    return HearthError(422, f"{param}: {msg}" if param else msg, param=param, code="invalid_value")


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(HearthError)
    async def _hearth(_: Request, exc: HearthError) -> Response:
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> Response:
        errors = exc.errors()
        if errors and errors[0].get("type") == "json_invalid":
            return HearthError(400, "request body is not valid JSON", code="invalid_json").response()
        return invalid(errors).response()

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        message = exc.detail if isinstance(exc.detail, str) else "request failed"
        headers = dict(exc.headers or {})
        code = None
        if exc.status_code == 405:
            # Starlette names the methods of the one route it matched; a path served by several routes
            # (GET and POST /api/conversations) answers all of theirs.
            allow = allowed_methods(request.app, request.scope)
            headers["Allow"] = ", ".join(allow) or headers.get("Allow", "")
            message = f"{request.method} is not allowed here; use {headers['Allow']}"
            code = "method_not_allowed"
        return HearthError(exc.status_code, message, code=code, headers=headers).response()

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> Response:
        import logging

        logging.getLogger("hearth").exception("unhandled error")
        return HearthError(500, "internal server error", code="internal_error").response()
