"""``BlobStore`` on S3-compatible object storage (AWS S3, MinIO, SeaweedFS, Ceph): the registry's artifacts shared by
every machine of a team, addressed by sha256 exactly as the local store does (``<prefix>/objects/ab/abcdef...``).

Credentials and the endpoint come from the environment as boto3 reads them (``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_ENDPOINT_URL`` for a non-AWS server, ``AWS_DEFAULT_REGION``), never from params.
An object is written only after the whole file was hashed, under its digest: it is whole or absent, and a second
put of the same bytes is a HEAD, not an upload. boto3 is imported here only (the fast-moving library's one module).
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlparse

from components.errors import RegistryError
from registry.store import ArtifactRecord, hash_stream

_CHUNK = 1 << 20


def parse_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` -> (bucket, prefix without slashes at the ends). Raises RegistryError."""
    parts = urlparse(url)
    if parts.scheme != "s3" or not parts.netloc:
        raise RegistryError(f"register.artifacts: {url!r} is not an s3://bucket/prefix URL")
    return parts.netloc, parts.path.strip("/")


class S3BlobStore:
    """Blobs in ``s3://<bucket>/<prefix>/objects/``; the bucket must exist (created by whoever runs the storage)."""

    def __init__(self, url: str, client: Any = None) -> None:
        import boto3
        from botocore.config import Config

        self.bucket, prefix = parse_s3_url(url)
        self.prefix = f"{prefix}/objects" if prefix else "objects"
        self.client = client or boto3.client("s3", config=Config(retries={"max_attempts": 5, "mode": "standard"}))

    def _key(self, sha256: str) -> str:
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise ValueError(f"not a sha256 hex digest: {sha256!r}")
        return f"{self.prefix}/{sha256[:2]}/{sha256[2:]}"

    def location(self, sha256: str) -> str:
        return f"s3://{self.bucket}/{self._key(sha256)}"

    def _size(self, key: str) -> int | None:
        from botocore.exceptions import ClientError

        try:
            return int(self.client.head_object(Bucket=self.bucket, Key=key)["ContentLength"])
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise RegistryError(f"s3://{self.bucket}/{key}: {exc}") from None

    def put_file(self, source: Path) -> ArtifactRecord:
        """Hash ``source``, then upload it under its digest unless an object of that size is already there."""
        digest, size = hashlib.sha256(), 0
        with source.open("rb") as handle:
            while block := handle.read(_CHUNK):
                digest.update(block)
                size += len(block)
        sha = digest.hexdigest()
        key = self._key(sha)
        if self._size(key) != size:
            self.client.upload_file(str(source), self.bucket, key)  # multipart for large files; atomic on complete
        return ArtifactRecord(path=source.name, sha256=sha, size=size)

    def open(self, sha256: str) -> IO[bytes]:
        """The object's bytes in a local temp file (seekable, removed when closed)."""
        spool = tempfile.TemporaryFile()  # noqa: SIM115 (returned open: the caller closes it)
        try:
            self.client.download_fileobj(self.bucket, self._key(sha256), spool)
        except Exception as exc:
            spool.close()
            raise RegistryError(f"{self.location(sha256)}: cannot read ({exc})") from None
        spool.seek(0)
        return spool

    def verify(self, sha256: str, size: int) -> str | None:
        """None when the object's bytes hash to ``sha256``; otherwise what is wrong (missing, truncated, tampered)."""
        where = self.location(sha256)
        actual = self._size(self._key(sha256))
        if actual is None:
            return f"blob {where} is missing"
        if actual != size:
            return f"blob {where} has {actual} bytes, {size} recorded (truncated or tampered)"
        body = self.client.get_object(Bucket=self.bucket, Key=self._key(sha256))["Body"]
        got = hash_stream(body)
        return None if got == sha256 else f"blob {where} hashes to {got[:12]}, {sha256[:12]} recorded (tampered)"
