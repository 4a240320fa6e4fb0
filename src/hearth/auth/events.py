"""Auth context events: admin actions on users and keys, published with the change they record.

`actor` is the username of the admin whose request made the change; None when it was made on the database
directly (first start, the `hearth users` / `hearth keys` commands). Events never carry a key or its hash.
"""

from __future__ import annotations

from typing import ClassVar

from hearth.events.schemas import Event


class _AuthEvent(Event):
    context: ClassVar[str] = "auth"


class UserCreated(_AuthEvent):
    user_id: str
    username: str
    role: str
    premium: bool
    actor: str | None = None


class UserDisabled(_AuthEvent):
    user_id: str
    username: str
    actor: str | None = None


class UserEnabled(_AuthEvent):
    user_id: str
    username: str
    actor: str | None = None


class KeyCreated(_AuthEvent):
    key_id: str
    user_id: str
    username: str
    name: str
    priority: str
    actor: str | None = None


class KeyRevoked(_AuthEvent):
    key_id: str
    user_id: str
    username: str
    actor: str | None = None


class PasswordReset(_AuthEvent):
    """Someone else set the user's password (an admin, or `hearth users set-password`); the user's password
    sessions ended. Never carries the password or its hash."""

    user_id: str
    username: str
    actor: str | None = None


class PasswordChanged(_AuthEvent):
    """The user changed their own password (the current one was checked)."""

    user_id: str
    username: str
