"""Export and erasure of one user across every context, through the platform's personal-data registry.

The export is a zip archive built in a temporary file off the event loop and streamed from there (a user's
uploads and audio can be large; nothing holds the whole archive in memory): `manifest.json`, one
`<context>.json` per holder, and the holders' files under `files/<context>/…`.

Erasure: the confirmation must be the username; the last enabled admin cannot be erased (409); then every
holder erases (platform.personal_data gives the order) and `UserErased` is published, naming no one.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import weakref
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
from pydantic_core import to_jsonable_python

from hearth.auth.personal_data import check_erasable
from hearth.auth.ports import UserDirectory
from hearth.events.bus import EventBus
from hearth.platform.db import Database, utcnow
from hearth.platform.errors import HearthError, not_found
from hearth.platform.personal_data import PersonalDataRegistry, new_pseudonym
from hearth.privacy.events import UserErased
from hearth.privacy.schemas import Erased

ARCHIVE_FORMAT = 1  # manifest.json's "format": bumped when the archive's layout changes
CHUNK = 64 * 1024


class PrivacyService:
    def __init__(
        self, *, db: Database, bus: EventBus, users: UserDirectory, registry: PersonalDataRegistry
    ) -> None:
        self.db = db
        self.bus = bus
        self.users = users
        self.registry = registry
        # One erasure or export per user at a time: an export racing an erasure would archive half a user.
        # Weak values: a user's lock lives while someone holds or waits on it, then goes.
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    def _lock(self, user_id: str) -> asyncio.Lock:
        lock = self._locks.get(user_id)
        if lock is None:
            lock = self._locks[user_id] = asyncio.Lock()
        return lock

    async def username(self, user_id: str) -> str:
        """The user's name; 404 for an unknown id."""
        name = (await self.users.usernames([user_id])).get(user_id)
        if name is None:
            raise not_found(f"no user with id {user_id!r}", param="user_id", code="user_not_found")
        return name

    # -- export -----------------------------------------------------------------------------------------

    async def export_archive(self, user_id: str) -> Path:
        """Write the user's archive to a temporary file and return it (the caller removes it)."""
        username = await self.username(user_id)
        async with self._lock(user_id):
            data = await self.registry.export(user_id)
            files = await self.registry.files(user_id)
        manifest = {
            "format": ARCHIVE_FORMAT,
            "user_id": user_id,
            "username": username,
            "exported_at": utcnow().isoformat(),
            "contexts": {
                context: {kind: len(rows) for kind, rows in kinds.items()} for context, kinds in data.items()
            },
            "files": [f"files/{name}" for name, _ in files],
        }
        return await asyncio.to_thread(_write_zip, manifest, data, files)

    async def stream(self, path: Path) -> AsyncIterator[bytes]:
        """The archive's bytes in chunks; the file is removed when the response ends, however it ends."""
        try:
            with path.open("rb") as f:
                while chunk := await asyncio.to_thread(f.read, CHUNK):
                    yield chunk
        finally:
            await asyncio.to_thread(path.unlink, missing_ok=True)

    # -- erasure ----------------------------------------------------------------------------------------

    async def erase(self, user_id: str, *, confirm: str, actor: str | None = None) -> Erased:
        """Erase the user everywhere. `confirm` must be the username (422 otherwise); 409 for the last
        enabled admin; `actor` is the admin's name when an admin erases someone else."""
        username = await self.username(user_id)
        if confirm != username:
            raise HearthError(
                422,
                f"to erase this account for good, send confirm equal to its username ({username!r})",
                param="confirm",
                code="confirmation_mismatch",
            )
        async with self._lock(user_id):
            await check_erasable(self.db, user_id)
            alias = new_pseudonym()
            contexts = await self.registry.erase(user_id, alias=alias)
            await self.db.scrub()
            await self.bus.publish(UserErased(subject=alias, actor=actor or alias, contexts=contexts))
        return Erased(pseudonym=alias, contexts=contexts)


def _json(value: Any) -> bytes:
    return orjson.dumps(value, default=to_jsonable_python, option=orjson.OPT_INDENT_2)


def _write_zip(manifest: dict[str, Any], data: dict[str, Any], files: list[tuple[str, Path]]) -> Path:
    fd, name = tempfile.mkstemp(prefix="hearth-export-", suffix=".zip")
    os.close(fd)
    path = Path(name)
    try:
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("manifest.json", _json(manifest))
            for context, kinds in data.items():
                archive.writestr(f"{context}.json", _json(kinds))
            for arcname, source in files:
                try:
                    archive.write(source, f"files/{arcname}")
                except FileNotFoundError:
                    continue  # removed by retention between listing and archiving
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path
