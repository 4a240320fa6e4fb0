"""Upload checks: what a request may queue (names, formats, metadata), as items the enqueuer stores.

Every check raises a 4xx HearthError naming the field; a batch names the item (`documents.3.source`)."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hearth.platform.errors import HearthError, bad_request
from hearth.rag.extract import SUPPORTED, ExtractionError, content_type_for, precheck
from hearth.rag.schemas import TextDocument, check_metadata


@dataclass(frozen=True)
class FileUpload:
    """One uploaded file to ingest, as received (checked by `file_item`)."""

    filename: str
    data: bytes
    source: str | None = None
    title: str | None = None
    metadata: dict[str, Any] | None = None


@dataclass(frozen=True)
class Item:
    """One checked document to queue: its source, format, bytes and the hash that decides "unchanged"."""

    source: str
    content_type: str
    data: bytes
    title: str | None
    metadata: dict[str, Any]
    content_hash: str


def _item(
    *, source: str, content_type: str, data: bytes, title: str | None, metadata: dict[str, Any]
) -> Item:
    digest = hashlib.sha256(data)
    # Title and metadata are stored on every chunk, so a change to them is a new version too.
    digest.update(json.dumps([content_type, title, metadata], sort_keys=True, default=str).encode())
    return Item(source, content_type, data, title, metadata, digest.hexdigest())


def file_item(upload: FileUpload) -> Item:
    """A checked uploaded file (its format from the file name's extension). It may inflate a DOCX (up to
    its caps) to check it: call it in a worker thread."""
    check_name(upload.filename, param="filename", allow_dirs=False)
    content_type = content_type_for(upload.filename)
    if content_type is None:
        raise HearthError(
            415,
            f"unsupported file type {Path(upload.filename).suffix or '(none)'!r}: send one of "
            + ", ".join(sorted(SUPPORTED)),
            code="unsupported_type",
            type="invalid_request_error",
            param="file",
        )
    if not upload.data:
        raise bad_request("the file is empty", param="file", code="empty_file")
    try:
        # Cheap up front (a PDF opens, a DOCX's zip inflates within its sizes): a file that cannot be read
        # is refused here, leaving no document, job or event behind, instead of failing in the worker.
        precheck(upload.data, content_type)
    except ExtractionError as exc:
        raise HearthError(
            422, str(exc), code="unreadable_file", type="invalid_request_error", param="file"
        ) from None
    source = upload.source or upload.filename
    check_name(source, param="source", allow_dirs=True)
    try:
        metadata = check_metadata(upload.metadata or {})
    except ValueError as exc:
        raise bad_request(str(exc), param="metadata") from None
    return _item(
        source=source, content_type=content_type, data=upload.data, title=upload.title, metadata=metadata
    )


def text_item(document: TextDocument) -> Item:
    """A checked JSON text document (without a source, one named by its content)."""
    if not document.text.strip():
        raise bad_request("the text is empty", param="text", code="empty_file")
    data = document.text.encode()
    source = document.source or "text-" + hashlib.sha256(data).hexdigest()[:16]
    check_name(source, param="source", allow_dirs=True)
    return _item(
        source=source,
        content_type=document.format,
        data=data,
        title=document.title,
        metadata=document.metadata,
    )


def checked(field: str, index: int, check: Callable[[], Item]) -> Item:
    """Run one item's checks; an error names the item (`documents.3.source`) so the client can fix it."""
    try:
        return check()
    except HearthError as exc:
        raise HearthError(
            exc.status,
            f"{field}[{index}]: {exc.message}",
            code=exc.code,
            param=f"{field}.{index}.{exc.param}" if exc.param else f"{field}.{index}",
            type=exc.type,
        ) from None


def unique(items: list[Item], field: str) -> list[Item]:
    """One request may name a source once: two versions of a document in one request have no order."""
    seen: dict[str, int] = {}
    for i, item in enumerate(items):
        if item.source in seen:
            raise bad_request(
                f"{field}[{i}]: source {item.source!r} is also {field}[{seen[item.source]}]'s",
                param=f"{field}.{i}.source",
                code="duplicate_source",
            )
        seen[item.source] = i
    return items


def check_name(name: str, *, param: str, allow_dirs: bool) -> None:
    """Reject names that could reach outside a folder or confuse a file system (400)."""
    if not name or len(name) > 1024:
        raise bad_request(f"{param} must be 1 to 1024 characters", param=param, code="invalid_name")
    if "\x00" in name or any(ord(c) < 32 for c in name):
        raise bad_request(
            f"{param} must not contain NUL or control characters", param=param, code="invalid_name"
        )
    parts = name.replace("\\", "/").split("/")
    if ".." in parts or name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        raise bad_request(
            f"{param} must not contain '..' or be an absolute path", param=param, code="invalid_name"
        )
    if not allow_dirs and len(parts) > 1:
        raise bad_request(f"{param} must be a bare file name", param=param, code="invalid_name")


def default_title(source: str) -> str:
    """A document's title when neither the request nor the file gives one: its file name's stem."""
    return Path(source.replace("\\", "/")).stem or source
