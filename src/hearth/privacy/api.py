"""Routes: GET /api/me/export and DELETE /api/me (the caller's own data), and their admin variants
GET /api/admin/users/{user_id}/export and POST /api/admin/users/{user_id}/erase."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from starlette.responses import StreamingResponse

from hearth.auth.deps import AdminUser, CurrentUser
from hearth.platform.deps import port
from hearth.platform.kit.openapi import errors
from hearth.privacy.ports import SERVICE
from hearth.privacy.schemas import Erased, EraseRequest
from hearth.privacy.service import PrivacyService

router = APIRouter(tags=["privacy"])

Privacy = Annotated[PrivacyService, Depends(port(SERVICE))]

_ZIP = {
    200: {
        "description": "A zip archive: manifest.json, one JSON file per context, the files under files/",
        "content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}},
    }
}


async def _archive(privacy: PrivacyService, user_id: str, username: str) -> StreamingResponse:
    path = await privacy.export_archive(user_id)
    return StreamingResponse(
        privacy.stream(path),
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="hearth-export-{username}.zip"'},
    )


@router.get("/api/me/export", response_class=StreamingResponse, responses={**_ZIP, **errors(404)})
async def export_me(privacy: Privacy, principal: CurrentUser) -> StreamingResponse:
    """Everything Hearth holds about the caller, across every context, as one zip archive."""
    return await _archive(privacy, principal.user_id, principal.username)


@router.delete("/api/me", response_model=Erased, responses=errors(404, 409))
async def erase_me(body: EraseRequest, privacy: Privacy, principal: CurrentUser) -> Erased:
    """Erase the caller from every context, for good (`confirm` must be the caller's username; 409 for the
    last enabled admin). Publishes UserErased."""
    return await privacy.erase(principal.user_id, confirm=body.confirm)


@router.get(
    "/api/admin/users/{user_id}/export", response_class=StreamingResponse, responses={**_ZIP, **errors(404)}
)
async def export_user(user_id: str, privacy: Privacy, _: AdminUser) -> StreamingResponse:
    """Everything Hearth holds about one user, as one zip archive (admin keys only)."""
    return await _archive(privacy, user_id, await privacy.username(user_id))


@router.post("/api/admin/users/{user_id}/erase", response_model=Erased, responses=errors(404, 409))
async def erase_user(user_id: str, body: EraseRequest, privacy: Privacy, admin: AdminUser) -> Erased:
    """Erase one user from every context (admin keys only; `confirm` must be that user's username; 409
    for the last enabled admin)."""
    return await privacy.erase(user_id, confirm=body.confirm, actor=admin.username)
