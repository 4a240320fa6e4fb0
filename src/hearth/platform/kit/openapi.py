"""The OpenAPI document and the docs pages: what every route really accepts and answers, published so that a
client generator, Swagger's "try it out" and a fuzzer (schemathesis, in the test suite) can rely on it.

- `Error`: the API's one error shape, `{"error": {"message", "type", "param", "code"}}`, as a component.
- `errors(*statuses)`: a route's `responses=` for the error statuses it answers beyond the generic ones.
- `json_body(Model)`: the `openapi_extra` of a route that parses its JSON body itself (the /v1 hot path,
  routes that also take multipart): the schema is published, the handler keeps its fast parsing.
- `install(app)`: the document built once, with the Bearer security scheme on every authenticated route and
  the statuses every route of a kind answers (401 where a key is needed, 403 for admin routes, 400/413/422
  where a body is read, 404 where a path names a resource) added without repeating them on each route.
- `install_docs(app)`: /docs (Swagger UI) and /redoc served from the assets of an installed package, no CDN.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from importlib import resources
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Match, Mount, Route

BEARER = "HTTPBearer"
_REF = "#/components/schemas/{model}"


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None
    code: str | None


class Error(BaseModel):
    """Every error Hearth answers, whatever its status."""

    error: ErrorDetail


_DESCRIPTIONS = {
    400: "The body is not valid JSON, or a value is refused",
    401: "Missing, invalid or revoked API key",
    403: "The key may not do this (an admin key is needed, or the resource is shared read-only)",
    404: "No such resource for this caller",
    405: "Method not allowed (the `Allow` header lists the methods of this path)",
    409: "Conflicts with the current state",
    413: "The body (or the audio) is larger than the server's limit",
    415: "Unsupported content type",
    422: "A field is missing or invalid (`param` names it)",
    429: "Rate limit exceeded (`Retry-After` says when to retry)",
    502: "An upstream model server failed",
    503: "No deployment of the model (or the needed service) is available now",
    504: "An upstream model server timed out",
}


def error_response(status: int) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": _DESCRIPTIONS[status],
        "content": {"application/json": {"schema": {"$ref": _REF.format(model="Error")}}},
    }
    if status == 405:
        response["headers"] = {"Allow": {"schema": {"type": "string"}, "description": "allowed methods"}}
    elif status == 429:
        response["headers"] = {"Retry-After": {"schema": {"type": "string"}, "description": "seconds"}}
    elif status == 401:
        response["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"}}}
    return response


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for error statuses a route answers besides those `install` adds by itself."""
    return {status: {"model": Error, **error_response(status)} for status in statuses}


# One server-sent event, as a client reads it off a `text/event-stream` (OpenAPI 3.1 describes a streamed
# media type by one item's schema).
SSE_EVENT = {
    "type": "object",
    "properties": {
        "event": {"type": "string"},
        "data": {"type": "string", "description": "a JSON object, or [DONE] at the end of a /v1 stream"},
        "id": {"type": "string"},
        "retry": {"type": "integer"},
    },
}


def event_stream(status: int = 200) -> dict[int | str, dict[str, Any]]:
    """`responses=` entry for a route that streams server-sent events when asked to (`stream: true`)."""
    return {status: {"content": {"text/event-stream": {"schema": SSE_EVENT}}}}


# Statuses of routes that run models for the caller: the key's rate limit, the model's availability.
MODEL_ERRORS = (404, 429, 502, 503, 504)

_BODY_MODELS: dict[str, type[BaseModel]] = {}


def json_body(
    model: type[BaseModel], *, multipart: dict[str, Any] | None = None, description: str | None = None
) -> dict[str, Any]:
    """`openapi_extra` publishing `model` as the JSON body of a route that parses the body itself, and
    optionally a multipart/form-data schema the same route also accepts."""
    _BODY_MODELS[model.__name__] = model
    content: dict[str, Any] = {"application/json": {"schema": {"$ref": _REF.format(model=model.__name__)}}}
    if multipart is not None:
        content["multipart/form-data"] = {"schema": multipart}
    body: dict[str, Any] = {"required": True, "content": content}
    if description:
        body["description"] = description
    return {"requestBody": body}


def multipart_schema(
    fields: dict[str, dict[str, Any]],
    *,
    required: Iterable[str] = ("file",),
    files: Iterable[str] = ("file",),
) -> dict[str, Any]:
    """A multipart/form-data schema: `files` are binary parts, the other `fields` text parts."""
    properties = {name: {"type": "string", "format": "binary"} for name in files}
    properties.update({name: _not_null(field) for name, field in fields.items()})
    return {"type": "object", "properties": properties, "required": list(required)}


def _not_null(field: dict[str, Any]) -> dict[str, Any]:
    """A form field's schema without its `null` alternative: a multipart part is text or absent."""
    options = [o for o in field.get("anyOf", ()) if o != {"type": "null"}]
    if len(options) == 1:
        rest = {k: v for k, v in field.items() if k not in ("anyOf", "default")}
        return {**rest, **options[0]}
    return field


# -- Allow: the methods a path really answers ------------------------------------------------------------


def refuses(endpoint: Callable[..., Any]) -> Callable[..., Any]:
    """Marks a route that exists only to refuse a method with a clear message (messages are immutable):
    its methods are not in the path's `Allow`."""
    endpoint.__hearth_refuses__ = True  # type: ignore[attr-defined]
    return endpoint


def allowed_methods(app: Any, scope: dict[str, Any]) -> list[str]:
    """The methods of this request's path (405's `Allow`): those of every route with the same template as
    the first route matching the path, as the OpenAPI document lists them (`/api/conversations/search` is
    GET only, though `DELETE /api/conversations/{id}` would also match it)."""
    methods: set[str] = set()
    template = None
    probe = {**scope, "method": "GET"}
    for route in iter_route_contexts(app.router.routes):
        original = route.original_route
        if isinstance(original, Route):
            if getattr(route.endpoint, "__hearth_refuses__", False):
                continue
            if route.path_regex.match(scope["path"]) and route.methods:
                template = template or route.path_format
                if route.path_format == template:
                    methods |= route.methods
        elif isinstance(original, Mount) and template is None and original.matches(probe)[0] is Match.FULL:
            return ["GET", "HEAD"]  # static files
    return sorted(methods)


# -- the document ----------------------------------------------------------------------------------------


def _calls(dependant: Dependant) -> Iterator[Any]:
    for dep in dependant.dependencies:
        yield dep.call
        yield from _calls(dep)


def _add_body_models(schemas: dict[str, Any]) -> None:
    if not _BODY_MODELS:
        return
    _, top = models_json_schema([(m, "validation") for m in _BODY_MODELS.values()], ref_template=_REF)
    for name, definition in top.get("$defs", {}).items():
        existing = schemas.get(name)
        if existing is not None and existing != definition:
            raise RuntimeError(f"two different schemas are named {name!r} in the OpenAPI document")
        schemas[name] = definition


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            yield ref.rsplit("/", 1)[-1]
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def _plain_string(schema: dict[str, Any]) -> bool:
    return {k: v for k, v in schema.items() if k not in ("title", "description")} == {"type": "string"}


def build(app: FastAPI) -> dict[str, Any]:
    # Imported here: auth.deps imports platform.errors, which imports this module.
    from hearth.auth.deps import require_admin, require_principal

    schema = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
    )
    components = schema.setdefault("components", {})
    components.setdefault("securitySchemes", {})[BEARER] = {
        "type": "http",
        "scheme": "bearer",
        "description": "An API key (`hearth keys create`); the first admin's is in the data directory's "
        "admin-key.txt",
    }
    schemas = components.setdefault("schemas", {})
    _, error_schemas = models_json_schema([(Error, "serialization")], ref_template=_REF)
    schemas.update(error_schemas["$defs"])
    _add_body_models(schemas)
    for route in iter_route_contexts(app.routes):
        if not isinstance(route.original_route, APIRoute) or not route.include_in_schema:
            continue
        calls = set(_calls(route.dependant))
        for method in route.methods:
            operation = schema["paths"][route.path_format][method.lower()]
            responses = operation.setdefault("responses", {})
            statuses: list[int] = []
            if calls & {require_principal, require_admin}:
                operation["security"] = [{BEARER: []}]
                statuses.append(401)
            if require_admin in calls:
                statuses.append(403)
            if "requestBody" in operation:
                statuses += [400, 413, 422]
            params = operation.get("parameters", [])
            if any(p["in"] == "path" for p in params):
                statuses.append(404)
            if any(p["in"] != "path" or not _plain_string(p.get("schema", {})) for p in params):
                statuses.append(422)  # a parameter that can fail validation
            for status in statuses:
                responses.setdefault(str(status), error_response(status))
            # FastAPI's own 422 describes its validation list; Hearth answers 422 in its error shape.
            if "422" in responses:
                responses["422"] = error_response(422)
    used = set(_refs(schema["paths"]))
    pending = list(used)
    while pending:  # components referenced from components
        for name in _refs(schemas.get(pending.pop(), {})):
            if name not in used:
                used.add(name)
                pending.append(name)
    for name in ("HTTPValidationError", "ValidationError"):
        if name not in used:
            schemas.pop(name, None)
    return schema


def install(app: FastAPI) -> None:
    """The app's /openapi.json, built on first request."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


# -- the docs pages, offline -----------------------------------------------------------------------------

ASSETS = "/docs-assets"


def install_docs(app: FastAPI, *, docs_url: str = "/docs", redoc_url: str = "/redoc") -> None:
    """Swagger UI and ReDoc with their JavaScript and CSS from the `fastapi-offline` package, so the pages
    work without a network (the FastAPI defaults load them from a CDN)."""
    assets = resources.files("fastapi_offline") / "static"
    app.mount(ASSETS, StaticFiles(directory=str(assets)), name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"
    oauth_redirect = app.swagger_ui_oauth2_redirect_url or "/docs/oauth2-redirect"

    @app.get(docs_url, include_in_schema=False)
    async def swagger(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} - Swagger UI",
            oauth2_redirect_url=f"{root}{oauth_redirect}",
            swagger_js_url=f"{root}{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS}/favicon.png",
            # The key typed into "Authorize" survives a reload of the page.
            swagger_ui_parameters={"persistAuthorization": True},
        )

    @app.get(oauth_redirect, include_in_schema=False)
    async def swagger_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get(redoc_url, include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{ASSETS}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{ASSETS}/favicon.png",
            with_google_fonts=False,
        )
