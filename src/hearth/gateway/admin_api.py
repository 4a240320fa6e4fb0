"""Routes: /api/admin/models (admin keys only): the model catalogue, and changes to it at run time."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path
from starlette.responses import Response

from hearth.auth.deps import AdminUser
from hearth.gateway.admin import ModelAdmin, Section
from hearth.gateway.ports import SERVICE
from hearth.platform.deps import port
from hearth.platform.errors import HearthError

router = APIRouter(prefix="/api/admin/models", tags=["models"])

Admin = Annotated[ModelAdmin, Depends(port(SERVICE))]
SectionPath = Annotated[Section, Path(description="backends or aliases")]
NamePath = Annotated[str, Path(min_length=1, max_length=128)]
Spec = Annotated[
    dict[str, Any],
    Body(examples=[{"name": "ollama", "type": "openai", "base_url": "http://127.0.0.1:11434/v1"}]),
]
_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:-/")


@router.get("")
async def catalogue(admin: Admin, _: AdminUser) -> dict[str, Any]:
    """Backends and aliases as configured now (keys hidden), and each alias's deployments with their real
    model, engine, health and the one serving now."""
    return admin.catalogue()


@router.post("/{section}", status_code=201)
async def create(section: SectionPath, body: Spec, admin: Admin, principal: AdminUser) -> dict[str, Any]:
    """Add a backend ({"name", "type", "base_url", …}) or an alias ({"name", "kind", "deployments"}); the
    whole catalogue is validated (422 naming the key and the fix) and new backends must start."""
    spec = dict(body)
    name = spec.pop("name", None)
    if not isinstance(name, str) or not name or len(name) > 128 or not set(name) <= _NAME_CHARS:
        raise HearthError(
            422, "name: required, 1-128 letters, digits or . _ : - /", code="invalid_value", param="name"
        )
    return await admin.create(section, name, spec, actor=principal.username)


@router.patch("/{section}/{name:path}")
async def update(
    section: SectionPath, name: NamePath, body: Spec, admin: Admin, principal: AdminUser
) -> dict[str, Any]:
    """Change fields of a backend or alias (others stay; a field set to null returns to its default)."""
    body.pop("name", None)
    return await admin.update(section, name, body, actor=principal.username)


@router.delete("/{section}/{name:path}", status_code=204)
async def delete(section: SectionPath, name: NamePath, admin: Admin, principal: AdminUser) -> Response:
    """Remove an alias, or a backend no alias uses (409 while one does)."""
    await admin.delete(section, name, actor=principal.username)
    return Response(status_code=204)
