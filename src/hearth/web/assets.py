"""Static files: our own (web/static) under /static/app/ and the npm libraries that `make install` copies
into web/vendor (git-ignored) under /static/vendor/. Served from memory, gzip-compressed once when the
browser accepts it, revalidated by ETag; a path outside those two folders is a 404."""

from __future__ import annotations

import gzip
import hashlib
import mimetypes
from dataclasses import dataclass
from pathlib import Path

from fastapi import APIRouter, Request, Response

HERE = Path(__file__).parent
ROOTS = {"app": HERE / "static", "vendor": HERE / "vendor"}
TYPES = {".js": "text/javascript", ".mjs": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}

router = APIRouter(include_in_schema=False)


@dataclass(frozen=True)
class Asset:
    body: bytes
    gzipped: bytes
    etag: str
    media_type: str
    mtime: float


_cache: dict[Path, Asset] = {}


def _load(path: Path) -> Asset:
    mtime = path.stat().st_mtime
    cached = _cache.get(path)
    if cached is not None and cached.mtime == mtime:
        return cached
    body = path.read_bytes()
    media_type = TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    asset = Asset(
        body=body,
        gzipped=gzip.compress(body, compresslevel=9, mtime=0),
        etag='"' + hashlib.sha256(body).hexdigest()[:20] + '"',
        media_type=media_type,
        mtime=mtime,
    )
    _cache[path] = asset
    return asset


def resolve(root: str, name: str) -> Path | None:
    """The file `name` under the root called `root`, or None when it is missing or outside that root."""
    base = ROOTS.get(root)
    if base is None:
        return None
    path = (base / name).resolve()
    if not path.is_relative_to(base.resolve()) or not path.is_file():
        return None
    return path


def vendor_ready() -> bool:
    """Whether `make install` has copied the front-end libraries (the pages say so when it has not)."""
    return (ROOTS["vendor"] / "marked.esm.js").is_file() and (ROOTS["vendor"] / "purify.es.mjs").is_file()


@router.get("/static/{root}/{name:path}")
async def static(root: str, name: str, request: Request) -> Response:
    path = resolve(root, name)
    if path is None:
        return Response("not found", status_code=404, media_type="text/plain")
    asset = _load(path)
    # no-cache: the browser keeps the file but asks each time; an unchanged file costs a 304.
    headers = {"ETag": asset.etag, "Cache-Control": "no-cache", "Vary": "Accept-Encoding"}
    if request.headers.get("if-none-match") == asset.etag:
        return Response(status_code=304, headers=headers)
    if "gzip" in request.headers.get("accept-encoding", ""):
        headers["Content-Encoding"] = "gzip"
        return Response(asset.gzipped, media_type=asset.media_type, headers=headers)
    return Response(asset.body, media_type=asset.media_type, headers=headers)
