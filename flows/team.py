"""The shared team stack on one machine, for trying it (`emosafe serve --team`): PostgreSQL for the registry
(pgserver), an S3-compatible object store for artifacts and DVC (seaweedfs), and a Dask scheduler with worker
processes for the ladder; `emosafe serve` adds the Prefect server and a worker. Everything listens on loopback and
keeps its data under one folder (``.emosafe/team``), so a restart finds the registry and the artifacts again.

The Prefect server stays on its SQLite file here: Prefect's PostgreSQL migrations need the ``pg_trgm`` extension,
which pgserver's PostgreSQL build does not ship; ``emosafe serve --prefect-database`` points it at a PostgreSQL that
has it.

On real infrastructure each piece is the team's own (a managed PostgreSQL, S3 or MinIO, a Dask cluster, a Prefect
server): only the addresses in ``TeamStack.env`` change. The servers come from PyPI wheels (the ``team`` extra);
nothing is downloaded at run time. The tests start the object store with ``start_seaweedfs`` too, so what is tested
is what users run.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from components.errors import EmosafeError

BUCKET = "emosafe"
#: seaweedfs without an IAM config accepts any key; clients still need one to sign requests.
S3_KEYS = {"AWS_ACCESS_KEY_ID": "emosafe", "AWS_SECRET_ACCESS_KEY": "emosafe-local", "AWS_DEFAULT_REGION": "us-east-1"}


def _bin(name: str) -> str:
    """An executable the team extra installs beside this Python (or one on PATH)."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.is_file() else shutil.which(name) or name


def start_seaweedfs(folder: Path, ports: dict[str, int], log_file: Path) -> subprocess.Popen[bytes]:
    """``weed server -s3`` with its data in ``folder``; ``ports``: master, volume, filer, s3 and a ``<name>_grpc``
    for each (by default a gRPC port is its HTTP port + 10000, which may be taken or past 65535)."""
    folder.mkdir(parents=True, exist_ok=True)
    command = [_bin("weed"), "server", f"-dir={folder}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-s3"]
    command += ["-master.volumeSizeLimitMB=64", "-volume.max=32", "-master.telemetry=false"]  # nothing leaves
    command += ["-s3.port.iceberg=0", "-s3.port.lance=0"]  # catalog servers on fixed ports: not needed, may clash
    for name in ("master", "volume", "filer", "s3"):
        command += [f"-{name}.port={ports[name]}", f"-{name}.port.grpc={ports[name + '_grpc']}"]
    handle = log_file.open("ab")
    return subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)


def create_bucket(endpoint: str, bucket: str, keys: dict[str, str], timeout_s: float = 60) -> None:
    """Create ``bucket`` (idempotent), retrying while the store starts; EmosafeError after ``timeout_s``."""
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=keys["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=keys["AWS_SECRET_ACCESS_KEY"],
        region_name=keys["AWS_DEFAULT_REGION"],
    )
    deadline, error = time.monotonic() + timeout_s, None
    while time.monotonic() < deadline:
        try:
            existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
            if bucket not in existing:
                client.create_bucket(Bucket=bucket)
            return
        except Exception as exc:  # connection refused while it starts, then 503s until a volume is up
            error = exc
            time.sleep(0.5)
    raise EmosafeError(f"{endpoint}: the object store did not come up within {timeout_s:.0f} s ({error})")


def start_postgres(folder: Path) -> Any:
    """A PostgreSQL 16 server with its data in ``folder`` (kept across restarts), database ``registry`` created on
    first start. Returns the pgserver handle (``cleanup()`` stops it)."""
    from pgserver.postgres_server import get_server

    server = get_server(folder, cleanup_mode="stop")
    have = server.psql("SELECT datname FROM pg_database;")
    if "registry" not in have.split():
        server.psql("CREATE DATABASE registry;")
    return server


@dataclass
class TeamStack:
    """What `emosafe serve --team` started, and how clients reach it."""

    postgres: Any
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)  # for clients: registry, artifacts, S3, Dask

    def stop(self) -> None:
        from flows.serve import stop

        for process in reversed(self.processes):
            stop(process)
        self.postgres.cleanup()


def free_ports(count: int) -> list[int]:
    """``count`` distinct loopback ports free right now."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def seaweedfs_ports(s3_port: int) -> dict[str, int]:
    """The S3 port given, every internal port (master, volume, filer and each gRPC port) free ones."""
    names = ("master", "volume", "filer", "master_grpc", "volume_grpc", "filer_grpc", "s3_grpc")
    return dict(zip(names, free_ports(len(names)), strict=True)) | {"s3": s3_port}


def start_team(home: Path, s3_port: int = 8333, dask_port: int = 8786) -> TeamStack:
    """PostgreSQL, the object store (bucket ``emosafe``) on ``s3_port`` and a Dask scheduler on ``dask_port`` with
    two worker processes, under ``home``."""
    home.mkdir(parents=True, exist_ok=True)
    ports = seaweedfs_ports(s3_port) | {"dask": dask_port}
    stack = TeamStack(start_postgres(home / "postgres"))
    try:
        stack.processes.append(start_seaweedfs(home / "s3", ports, home / "s3.log"))
        endpoint = f"http://127.0.0.1:{ports['s3']}"
        create_bucket(endpoint, BUCKET, S3_KEYS)
        scheduler = f"tcp://127.0.0.1:{ports['dask']}"
        dask_log = (home / "dask.log").open("ab")
        scheduler_args = ["scheduler", "--host", "127.0.0.1", "--port", str(ports["dask"]), "--no-dashboard"]
        worker_args = ["worker", scheduler, "--nworkers", "2", "--nthreads", "1", "--no-dashboard"]
        for args in (scheduler_args, worker_args):
            stack.processes.append(
                subprocess.Popen(
                    [_bin("dask"), *args], stdout=dask_log, stderr=subprocess.STDOUT, start_new_session=True
                )
            )
        stack.env = {
            **S3_KEYS,
            "AWS_ENDPOINT_URL": endpoint,
            "EMOSAFE_REGISTRY": postgres_url(stack.postgres, "registry"),
            "EMOSAFE_ARTIFACTS": f"s3://{BUCKET}/registry",
            "EMOSAFE_DVC_REMOTE": f"s3://{BUCKET}/dvc",
            "EMOSAFE_DASK_SCHEDULER": scheduler,
        }
    except BaseException:
        stack.stop()
        raise
    return stack


def postgres_url(server: Any, database: str) -> str:
    """The libpq URL of ``database`` on a pgserver (a Unix socket in a private folder: no password needed)."""
    return str(server.get_uri(database))
