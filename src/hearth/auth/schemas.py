"""Request and response bodies of the user and key routes. Responses never carry a key's hash."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field

from hearth.auth.models import ApiKey
from hearth.platform.kit.schemas import ORMModel, columns_of
from hearth.platform.kit.time import UtcTimestamp

Username = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
Limit = Annotated[int, Field(ge=1)]


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: Username
    role: Literal["admin", "user"] = "user"
    premium: bool = False


class UserUpdate(BaseModel):
    """`PATCH /api/admin/users/{username}`: disable a user (their keys and sessions stop working at once)
    or enable them again."""

    model_config = ConfigDict(extra="forbid")

    disabled: bool


class UserOut(ORMModel):
    object: Literal["user"] = "user"
    id: str
    username: str
    role: str
    premium: bool
    disabled: bool
    created_at: UtcTimestamp
    has_password: bool = False

    @classmethod
    def of(cls, row: Any) -> Self:
        """From a user's row: whether a password is set, never its hash."""
        return cls.model_validate(row).model_copy(update={"has_password": row.password_hash is not None})


class UserList(BaseModel):
    object: Literal["list"] = "list"
    data: list[UserOut]


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user: Username = Field(description="the owner's username")
    name: Annotated[str, Field(max_length=128)] = ""
    priority: Literal["standard", "premium"] | None = Field(
        default=None, description="default: premium for premium users, else standard"
    )
    rpm_limit: Limit | None = Field(
        default=None, description="requests per minute; absent: the server default"
    )
    tpm_limit: Limit | None = Field(default=None, description="tokens per minute; absent: the server default")


class KeyOut(ORMModel):
    """A key as listings show it: never its hash or plaintext."""

    object: Literal["api_key"] = "api_key"
    id: str
    user_id: str
    username: str
    name: str
    prefix: str
    priority: str
    rpm_limit: int | None
    tpm_limit: int | None
    created_at: UtcTimestamp
    revoked_at: UtcTimestamp | None
    last_used_at: UtcTimestamp | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    @classmethod
    def of(cls, row: ApiKey, username: str, **extra: Any) -> Self:
        """From a key's row and its owner's name (which the row does not hold)."""
        return cls.model_validate({**columns_of(row), "username": username, **extra})


class KeyCreated(KeyOut):
    key: str = Field(description="the plaintext key; shown only in this response")


class KeyList(BaseModel):
    object: Literal["list"] = "list"
    data: list[KeyOut]


class Me(BaseModel):
    user: UserOut
    key: KeyOut | None = Field(
        description="the calling key; null for a web session signed in with a password"
    )


class PasswordSet(BaseModel):
    model_config = ConfigDict(extra="forbid")

    password: str = Field(min_length=8, max_length=1024)


class PasswordChange(PasswordSet):
    current: str | None = Field(default=None, max_length=1024, description="required when one is set")
