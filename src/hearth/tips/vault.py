"""The token vault: connector credentials encrypted at rest with Fernet (AES-128-CBC + HMAC-SHA256).

The key comes from HEARTH_SECRET_KEY (a Fernet key, or any passphrase, stretched with SHA-256), else from a
key file generated once in the Hearth home with mode 0600. Secrets are decrypted only to call the source
they belong to; nothing logs them or returns them from the API."""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

KEY_FILE = "tips-secret.key"


class VaultError(RuntimeError):
    """A stored secret that cannot be decrypted (the key changed)."""


def _fernet_key(secret: str) -> bytes:
    raw = secret.encode()
    try:
        if len(base64.urlsafe_b64decode(raw)) == 32:
            return raw
    except ValueError:
        pass
    return base64.urlsafe_b64encode(hashlib.sha256(raw).digest())


def load_key(data_dir: Path, secret: str | None) -> bytes:
    """The vault key: from `secret` (HEARTH_SECRET_KEY) when set, else the home's key file (created 0600)."""
    if secret:
        return _fernet_key(secret)
    path = data_dir / KEY_FILE
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        key = Fernet.generate_key()
        # O_EXCL: two processes starting at once cannot both write a different key.
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return path.read_bytes().strip()
        with os.fdopen(fd, "wb") as f:
            f.write(key)
        return key
    return path.read_bytes().strip()


class Vault:
    def __init__(self, key: bytes) -> None:
        self._fernet = Fernet(key)

    def seal(self, secret: str) -> bytes:
        return self._fernet.encrypt(secret.encode())

    def open(self, token: bytes) -> str:
        try:
            return self._fernet.decrypt(bytes(token)).decode()
        except InvalidToken:
            raise VaultError("a stored credential cannot be decrypted: HEARTH_SECRET_KEY changed?") from None

    def __repr__(self) -> str:  # never show the key
        return "Vault(<sealed>)"
