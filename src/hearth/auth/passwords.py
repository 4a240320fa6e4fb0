"""Password hashing for web sign-in: argon2id (argon2-cffi) with its library defaults (RFC 9106's second
recommended setting: 64 MiB, 3 passes), upgraded on sign-in when the parameters change."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from hearth.platform.errors import HearthError

MIN_LENGTH = 8
MAX_LENGTH = 1024  # argon2 takes any length; a cap keeps one request from hashing megabytes

_hasher = PasswordHasher()
# Verified against when the user does not exist or has no password, so a wrong name costs the same time
# as a wrong password and sign-in does not tell which usernames exist.
_DUMMY_HASH = _hasher.hash("not a password anyone has")


def check_password(password: object) -> str:
    """The password if it is acceptable; 422 otherwise."""
    if not isinstance(password, str) or not MIN_LENGTH <= len(password) <= MAX_LENGTH:
        raise HearthError(
            422,
            f"password must be {MIN_LENGTH} to {MAX_LENGTH} characters",
            param="password",
            code="invalid_password",
        )
    return password


def hash_password(password: str) -> str:
    return _hasher.hash(check_password(password))


def verify_password(stored: str | None, password: str) -> bool:
    """True when `password` matches `stored`; with no stored hash, spends the same time and says False."""
    try:
        return _hasher.verify(stored or _DUMMY_HASH, password) and stored is not None
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    return _hasher.check_needs_rehash(stored)
