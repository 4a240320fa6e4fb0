"""PLACEHOLDER — replaced by the auth work: /api/admin/users and /api/admin/keys."""

from fastapi import APIRouter

router = APIRouter()
