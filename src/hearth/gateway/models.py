"""Changes admins made to the model catalogue at run time (`/api/admin/models`, `hearth models add|set|
remove`), kept in the database so they survive a restart and reach every replica that shares it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, String
from sqlalchemy.orm import Mapped, mapped_column

from hearth.platform.db import Base
from hearth.platform.kit.time import UtcDateTime


class ModelOverride(Base):
    """One backend or alias as an admin set it; `spec` None: removed (even when hearth.yaml defines it)."""

    __tablename__ = "model_overrides"

    section: Mapped[str] = mapped_column(String(16), primary_key=True)  # "backends" | "aliases"
    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    spec: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False)
    updated_by: Mapped[str | None] = mapped_column(String(64), nullable=True)  # the admin's username
