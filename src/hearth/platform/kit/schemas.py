"""Response schemas built straight from ORM rows (`Schema.model_validate(row)`), so no context writes
row-to-schema mappers by hand."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import inspect


class ORMModel(BaseModel):
    model_config = ConfigDict(from_attributes=True)


def columns_of(row: Any) -> dict[str, Any]:
    """A row's column values by attribute name, to validate a schema from a row plus values it lacks
    (`Out.model_validate({**columns_of(row), "username": name})`)."""
    return {attr.key: getattr(row, attr.key) for attr in inspect(row).mapper.column_attrs}
