"""Request and response bodies of the privacy routes."""

from __future__ import annotations

from pydantic import BaseModel, Field


class EraseRequest(BaseModel):
    confirm: str = Field(
        description="The username of the account being erased, typed out: erasure cannot be undone.",
        max_length=64,
    )


class Erased(BaseModel):
    erased: bool = True
    pseudonym: str = Field(description="The name that replaced the user in the records kept (the audit log).")
    contexts: list[str] = Field(description="The contexts the user was erased from, in order.")
