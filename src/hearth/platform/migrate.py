"""Run Alembic migrations programmatically so `hearth serve` and the CLI always see the latest schema."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from hearth.platform.db import sync_url

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(database_url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", sync_url(database_url).replace("%", "%%"))
    return cfg


def upgrade(database_url: str) -> None:
    command.upgrade(alembic_config(database_url), "head")
