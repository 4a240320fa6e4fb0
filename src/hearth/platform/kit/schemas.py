"""Response schemas built straight from ORM rows (`Schema.model_validate(row)`), so no context writes
row-to-schema mappers by hand."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class ORMModel(BaseModel):
    model_config = ConfigDict(from_attributes=True)
