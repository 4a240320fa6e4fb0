"""Artifact storage by URI: `file://` under the data dir by default, `s3://` (MinIO's S3 client) when
`HEARTH_S3_BUCKET` is set (any S3-compatible server: AWS, MinIO, moto; `HEARTH_S3_ENDPOINT_URL` points at it).

Reads go by the URI's scheme, whatever the store new artifacts are written to, so runs made before S3 was
configured can still be downloaded."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlparse

CHUNK = 1 << 20


class ArtifactMissing(LookupError):
    """The URI names nothing (deleted, never written, or a typo)."""


@dataclass(frozen=True)
class Stored:
    uri: str
    size: int
    sha256: str


def digest(path: Path) -> tuple[int, str]:
    h = hashlib.sha256()
    size = 0
    with path.open("rb") as f:
        while block := f.read(CHUNK):
            h.update(block)
            size += len(block)
    return size, h.hexdigest()


class Backend(Protocol):
    scheme: str

    def put(self, local: Path, key: str) -> str: ...
    def fetch(self, uri: str, dest: Path) -> None: ...
    def exists(self, uri: str) -> bool: ...
    def iter_bytes(self, uri: str) -> Iterator[bytes]: ...
    def delete(self, uri: str) -> None: ...


class LocalBackend:
    """Files under `root` (the data dir's `artifacts/`), named by `file://` URIs."""

    scheme = "file"

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def put(self, local: Path, key: str) -> str:
        target = self.root / key
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(local, target)
        return target.as_uri()

    @staticmethod
    def path(uri: str) -> Path:
        parsed = urlparse(uri)
        if parsed.scheme != "file" or parsed.netloc not in ("", "localhost"):
            raise ArtifactMissing(f"{uri}: not a local file:// URI")
        return Path(unquote(parsed.path))

    def fetch(self, uri: str, dest: Path) -> None:
        source = self.path(uri)
        if not source.is_file():
            raise ArtifactMissing(f"artifact {uri} does not exist")
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, dest)

    def exists(self, uri: str) -> bool:
        try:
            return self.path(uri).is_file()
        except ArtifactMissing:
            return False

    def iter_bytes(self, uri: str) -> Iterator[bytes]:
        path = self.path(uri)
        if not path.is_file():
            raise ArtifactMissing(f"artifact {uri} does not exist")
        with path.open("rb") as f:
            while block := f.read(CHUNK):
                yield block

    def delete(self, uri: str) -> None:
        """Remove an artifact this store wrote (a file under its root); anything else is left alone."""
        path = self.path(uri).resolve()
        if path.is_relative_to(self.root):
            path.unlink(missing_ok=True)


class S3Backend:
    """Objects in one bucket under a prefix, named by `s3://bucket/key` URIs.

    The client is MinIO's SDK (any S3-compatible server). boto3 was the first choice, but every botocore
    release requires python-dateutil < 3 while the pinned kubernetes client requires ≥ 3: pip cannot
    install both, so the S3 client is the one that needs neither."""

    scheme = "s3"

    def __init__(
        self,
        *,
        bucket: str,
        prefix: str = "",
        endpoint_url: str | None = None,
        region: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
    ) -> None:
        from minio import Minio  # only needed when S3 is configured

        endpoint = urlparse(endpoint_url or "https://s3.amazonaws.com")
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.client: Any = Minio(
            endpoint.netloc,
            access_key=access_key_id,
            secret_key=secret_access_key,
            secure=endpoint.scheme == "https",
            region=region or "us-east-1",
        )

    def put(self, local: Path, key: str) -> str:
        full = self.prefix + key
        self.client.fput_object(self.bucket, full, str(local))
        return f"s3://{self.bucket}/{full}"

    @staticmethod
    def _split(uri: str) -> tuple[str, str]:
        parsed = urlparse(uri)
        if parsed.scheme != "s3" or not parsed.netloc or not parsed.path.strip("/"):
            raise ArtifactMissing(f"{uri}: not an s3://bucket/key URI")
        return parsed.netloc, parsed.path.lstrip("/")

    @staticmethod
    def _missing(exc: Exception) -> bool:
        return getattr(exc, "code", "") in ("NoSuchKey", "NoSuchBucket", "NoSuchObject", "ResourceNotFound")

    def fetch(self, uri: str, dest: Path) -> None:
        from minio.error import S3Error

        bucket, key = self._split(uri)
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.client.fget_object(bucket, key, str(dest))
        except S3Error as exc:
            if self._missing(exc):
                raise ArtifactMissing(f"artifact {uri} does not exist") from None
            raise

    def exists(self, uri: str) -> bool:
        from minio.error import S3Error

        try:
            bucket, key = self._split(uri)
            self.client.stat_object(bucket, key)
            return True
        except ArtifactMissing:
            return False
        except S3Error as exc:
            if self._missing(exc):
                return False
            raise

    def iter_bytes(self, uri: str) -> Iterator[bytes]:
        from minio.error import S3Error

        bucket, key = self._split(uri)
        try:
            response = self.client.get_object(bucket, key)
        except S3Error as exc:
            if self._missing(exc):
                raise ArtifactMissing(f"artifact {uri} does not exist") from None
            raise
        try:
            yield from response.stream(CHUNK)
        finally:
            response.close()
            response.release_conn()

    def delete(self, uri: str) -> None:
        """Remove an object of this store's bucket (removing a missing one is not an error in S3)."""
        bucket, key = self._split(uri)
        if bucket == self.bucket:
            self.client.remove_object(bucket, key)


class ArtifactStore:
    """Writes new artifacts to one backend; reads any URI by its scheme. Blocking: call from a thread."""

    def __init__(self, local: LocalBackend, s3: S3Backend | None = None) -> None:
        self.local = local
        self.s3 = s3
        self.writer: Backend = s3 or local

    def _by_uri(self, uri: str) -> Backend:
        scheme = urlparse(uri).scheme
        if scheme == "file":
            return self.local
        if scheme == "s3" and self.s3 is not None:
            return self.s3
        raise ArtifactMissing(f"{uri}: no artifact store for {scheme or 'a URI without a scheme'}")

    def put(self, local: Path, *, run_id: str, step: str, name: str) -> Stored:
        size, sha = digest(local)
        uri = self.writer.put(local, f"runs/{run_id}/{step}/{name}")
        return Stored(uri=uri, size=size, sha256=sha)

    def fetch(self, uri: str, dest: Path) -> None:
        self._by_uri(uri).fetch(uri, dest)

    def exists(self, uri: str) -> bool:
        try:
            return self._by_uri(uri).exists(uri)
        except ArtifactMissing:
            return False

    def iter_bytes(self, uri: str) -> Iterator[bytes]:
        return self._by_uri(uri).iter_bytes(uri)

    def delete(self, uri: str) -> None:
        self._by_uri(uri).delete(uri)


def store_from_settings(settings: Any) -> ArtifactStore:
    local = LocalBackend(Path(settings.data_dir) / "artifacts")
    s3 = None
    if settings.s3_bucket:
        s3 = S3Backend(
            bucket=settings.s3_bucket,
            prefix=settings.s3_prefix,
            endpoint_url=settings.s3_endpoint_url,
            region=settings.s3_region,
            access_key_id=settings.s3_access_key_id,
            secret_access_key=settings.s3_secret_access_key,
        )
    return ArtifactStore(local, s3)
