"""Where evidence JPEGs are kept: one small interface, a local filesystem store and an S3 one.

Both are content-addressed: an image is kept under its SHA-256, so the same bytes are stored
once and a re-upload is harmless. `put` returns only once the bytes are durable — the
filesystem store writes a temporary file, fsyncs it, renames it into place and fsyncs the
folder; an S3 PUT is acknowledged by the server after it stored the object. Which passage an
image belongs to is recorded in the database (`central.evidence.records`), not here; deleting
a blob that another passage still names is the caller's concern.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import re
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from central.config import CentralSettings

log = logging.getLogger(__name__)

SHA256 = re.compile(r"^[0-9a-f]{64}$")


class EvidenceStoreError(RuntimeError):
    """The store could not keep or read an image (disk full, server refused, ...)."""


def sha256_hex(data: bytes) -> str:
    """Hex SHA-256 of `data`."""
    return hashlib.sha256(data).hexdigest()


def _checked(digest: str) -> str:
    if not SHA256.match(digest):
        raise ValueError(f"not a hex SHA-256: {digest!r}")
    return digest


class EvidenceStore(Protocol):
    """Keeps image bytes under their SHA-256."""

    def put(self, passage: str, image_id: str, data: bytes) -> str:
        """Keep `data` durably (image `image_id` of passage `passage`); returns its SHA-256."""

    def get(self, digest: str) -> bytes | None:
        """The bytes kept under `digest`, or None when absent."""

    def exists(self, digest: str) -> bool:
        """Whether bytes are kept under `digest`."""

    def delete(self, digest: str) -> bool:
        """Delete the bytes under `digest`; False when there were none."""


def write_atomic(path: Path, data: bytes) -> None:
    """Write `path` whole or not at all: a temporary file beside it, fsynced, then renamed."""
    partial = path.with_name(f".{path.name}.{secrets.token_hex(4)}.part")
    with partial.open("wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    partial.replace(path)


class FilesystemEvidenceStore:
    """Files under `root/ab/cd/<sha256>`; writes are fsynced (file and folder) before `put`
    returns."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, digest: str) -> Path:
        digest = _checked(digest)
        return self.root / digest[:2] / digest[2:4] / digest

    def put(self, passage: str, image_id: str, data: bytes) -> str:
        """Keep `data` under its SHA-256 (temp file, fsync, rename, fsync folder); a file already
        there is kept only if it still hashes right (a damaged one is replaced)."""
        digest = sha256_hex(data)
        path = self._path(digest)
        existing = self.get(digest)
        if existing is not None and sha256_hex(existing) == digest:
            return digest
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(path, data)
            for folder in (path.parent, path.parent.parent):
                fd = os.open(folder, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
        except OSError as exc:
            raise EvidenceStoreError(f"cannot keep image {image_id} of {passage}: {exc}") from exc
        return digest

    def get(self, digest: str) -> bytes | None:
        """The file's bytes, or None."""
        try:
            return self._path(digest).read_bytes()
        except FileNotFoundError:
            return None

    def exists(self, digest: str) -> bool:
        """Whether the file is there."""
        return self._path(digest).is_file()

    def delete(self, digest: str) -> bool:
        """Remove the file."""
        try:
            self._path(digest).unlink()
        except FileNotFoundError:
            return False
        return True


class S3EvidenceStore:
    """Objects `sha256/ab/<sha256>` in a bucket of an S3-compatible server (the `minio`
    client: MinIO, SeaweedFS, Ceph RGW, AWS S3). The bucket is created when missing."""

    def __init__(self, url: str, bucket: str, access_key: str, secret_key: str,
                 region: str | None = None) -> None:
        try:
            from minio import Minio
        except ImportError as exc:  # an optional dependency: pip install smartgate[s3]
            raise EvidenceStoreError("the S3 evidence store needs the `minio` package "
                                     "(pip install 'smartgate[s3]')") from exc
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"S3 endpoint must be http(s)://host[:port], got {url!r}")
        self.bucket = bucket
        self.client = Minio(parts.netloc, access_key=access_key, secret_key=secret_key,
                            secure=parts.scheme == "https", region=region)
        if not self.client.bucket_exists(bucket):
            self.client.make_bucket(bucket)

    @staticmethod
    def _key(digest: str) -> str:
        digest = _checked(digest)
        return f"sha256/{digest[:2]}/{digest}"

    def put(self, passage: str, image_id: str, data: bytes) -> str:
        """PUT the object (acknowledged by the server once stored)."""
        from minio.error import MinioException

        digest = sha256_hex(data)
        try:
            self.client.put_object(
                self.bucket, self._key(digest), io.BytesIO(data), len(data),
                content_type="image/jpeg",
                metadata={"x-amz-meta-passage": passage, "x-amz-meta-image": image_id},
            )
        except (MinioException, OSError) as exc:
            raise EvidenceStoreError(f"cannot keep image {image_id} of {passage}: {exc}") from exc
        return digest

    def get(self, digest: str) -> bytes | None:
        """GET the object, or None when the server has no such key."""
        from minio.error import S3Error

        try:
            reply = self.client.get_object(self.bucket, self._key(digest))
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NoSuchObject"):
                return None
            raise EvidenceStoreError(f"cannot read {digest}: {exc}") from exc
        try:
            return reply.read()
        finally:
            reply.close()
            reply.release_conn()

    def exists(self, digest: str) -> bool:
        """HEAD the object."""
        from minio.error import S3Error

        try:
            self.client.stat_object(self.bucket, self._key(digest))
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NoSuchObject", "ResourceNotFound"):
                return False
            raise EvidenceStoreError(f"cannot check {digest}: {exc}") from exc
        return True

    def delete(self, digest: str) -> bool:
        """DELETE the object (False when it was not there)."""
        if not self.exists(digest):
            return False
        self.client.remove_object(self.bucket, self._key(digest))
        return True


def open_store(settings: CentralSettings) -> EvidenceStore:
    """The evidence store the settings name (the filesystem one under data_dir by default)."""
    if settings.evidence_store == "s3":
        assert settings.evidence_s3_url and settings.evidence_s3_access_key
        assert settings.evidence_s3_secret_key is not None
        return S3EvidenceStore(
            settings.evidence_s3_url, settings.evidence_s3_bucket,
            settings.evidence_s3_access_key, settings.evidence_s3_secret_key.get_secret_value(),
            settings.evidence_s3_region,
        )
    return FilesystemEvidenceStore(settings.evidence_dir or settings.data_dir / "evidence")
