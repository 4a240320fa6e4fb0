"""Voice audio files under the data dir: `<data_dir>/voice/<user_id>/<name>`, paths stored relative."""

from __future__ import annotations

import os
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path


class AudioStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def write(self, user_id: str, name: str, data: bytes) -> str:
        """Write a file atomically; returns its path relative to the store."""
        folder = self.root / user_id
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / name
        tmp = path.with_name(path.name + ".part")
        tmp.write_bytes(data)
        os.replace(tmp, path)
        return f"{user_id}/{name}"

    def _resolve(self, relative: str) -> Path:
        path = (self.root / relative).resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise ValueError(f"{relative!r} is outside the voice store")
        return path

    def read(self, relative: str) -> bytes | None:
        try:
            return self._resolve(relative).read_bytes()
        except FileNotFoundError:
            return None

    def remove(self, paths: Iterable[str | None]) -> int:
        removed = 0
        for relative in paths:
            if not relative:
                continue
            try:
                self._resolve(relative).unlink()
                removed += 1
            except FileNotFoundError:
                pass
        return removed

    def remove_orphans(self, cutoff: datetime, kept: set[str]) -> int:
        """Remove files written before `cutoff` that no row points to (left by a crash mid-store)."""
        if not self.root.exists():
            return 0
        limit = cutoff.timestamp()
        removed = 0
        for path in self.root.glob("*/*"):
            relative = f"{path.parent.name}/{path.name}"
            try:
                if relative not in kept and path.is_file() and path.stat().st_mtime < limit:
                    path.unlink()
                    removed += 1
            except FileNotFoundError:
                pass
        return removed
