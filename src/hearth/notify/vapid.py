"""The server's VAPID key pair (RFC 8292): generated once, stored as a PEM file with mode 0600 in the data
dir, and the public key browsers pass to `pushManager.subscribe` as `applicationServerKey`."""

from __future__ import annotations

import base64
import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from py_vapid import Vapid02

KEY_FILE = "vapid-private.pem"


def load_or_create(folder: Path) -> Vapid02:
    """The key pair in `folder`, created on first use (an existing file is never replaced)."""
    path = folder / KEY_FILE
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        vapid = Vapid02()
        vapid.generate_keys()
        pem = vapid.private_pem()
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process wrote it first: use theirs
        else:
            with os.fdopen(fd, "wb") as f:
                f.write(pem)
    return Vapid02.from_file(str(path))


def public_key(vapid: Vapid02) -> str:
    """The uncompressed P-256 public point, base64url without padding (what browsers expect)."""
    raw = vapid.public_key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
