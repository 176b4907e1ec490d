"""The evidence store contract, run against every store: the local filesystem one always, the
S3 one against a real S3-compatible server when `SMARTGATE_TEST_S3_URL` names one
(http://ACCESS:SECRET@host:port; e.g. a MinIO or SeaweedFS the test script started), skipped
otherwise — no S3 server installs from the registries this project uses."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from central.evidence.store import (
    EvidenceStore,
    FilesystemEvidenceStore,
    S3EvidenceStore,
    sha256_hex,
)

JPEG = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 40 + b"\xff\xd9"
S3_URL = os.environ.get("SMARTGATE_TEST_S3_URL")


def _s3_store() -> S3EvidenceStore:
    parts = urlsplit(S3_URL or "")
    if not parts.username or not parts.password:
        pytest.fail("SMARTGATE_TEST_S3_URL must be http(s)://ACCESS:SECRET@host:port")
    endpoint = f"{parts.scheme}://{parts.hostname}:{parts.port or 80}"
    return S3EvidenceStore(endpoint, f"test-{uuid.uuid4().hex[:12]}", parts.username,
                           parts.password)


@pytest.fixture(params=["filesystem", "s3"])
def evidence_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EvidenceStore]:
    if request.param == "filesystem":
        yield FilesystemEvidenceStore(tmp_path / "evidence")
        return
    if not S3_URL:
        pytest.skip("no S3 server: set SMARTGATE_TEST_S3_URL=http://KEY:SECRET@host:port")
    yield _s3_store()


def test_put_returns_the_sha256_and_get_returns_the_bytes(evidence_store: EvidenceStore) -> None:
    digest = evidence_store.put("passage-1", "img1", JPEG)
    assert digest == sha256_hex(JPEG)
    assert evidence_store.exists(digest)
    assert evidence_store.get(digest) == JPEG


def test_put_is_idempotent_and_content_addressed(evidence_store: EvidenceStore) -> None:
    first = evidence_store.put("passage-1", "img1", JPEG)
    second = evidence_store.put("passage-2", "other", JPEG)
    assert first == second
    assert evidence_store.get(first) == JPEG


def test_absent_and_deleted(evidence_store: EvidenceStore) -> None:
    absent = sha256_hex(b"never stored")
    assert evidence_store.get(absent) is None
    assert not evidence_store.exists(absent)
    assert evidence_store.delete(absent) is False
    digest = evidence_store.put("passage-1", "img1", JPEG)
    assert evidence_store.delete(digest) is True
    assert not evidence_store.exists(digest)
    assert evidence_store.get(digest) is None


def test_a_malformed_digest_is_refused(evidence_store: EvidenceStore) -> None:
    for bad in ("../../etc/passwd", "ABC", "0" * 63, "g" * 64):
        with pytest.raises(ValueError):
            evidence_store.get(bad)


def test_filesystem_store_leaves_no_partial_files_and_detects_alteration(tmp_path: Path) -> None:
    fs = FilesystemEvidenceStore(tmp_path / "ev")
    digest = fs.put("p", "i", JPEG)
    files = [p for p in (tmp_path / "ev").rglob("*") if p.is_file()]
    assert [p.name for p in files] == [digest]
    files[0].write_bytes(JPEG[:-1] + b"\x00")  # bit rot or tampering
    assert sha256_hex(fs.get(digest) or b"") != digest
    assert fs.put("p", "i", JPEG) == digest  # a re-upload repairs it
    assert fs.get(digest) == JPEG
