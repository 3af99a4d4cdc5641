"""The whole local stack, started once for the e2e tests on free ports, in memory."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
import requests

from local.services import free_port
from local.template import ROOT
from tests.conftest import leaked_secrets


@dataclass
class LocalStack:
    """Where the running stack listens, and how to mint keys in it."""

    base_url: str
    dynamodb_port: int
    sqs_port: int
    state_dir: Path

    def client(self, service: str):
        """A boto3 client for the stack's DynamoDB Local or local SQS, with throwaway credentials."""
        port = self.sqs_port if service == "sqs" else self.dynamodb_port
        return boto3.client(
            service,
            endpoint_url=f"http://127.0.0.1:{port}",
            region_name="us-east-1",
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )

    def key(self, tenant: str, scopes: str = "ingest,read", rate_limit: int | None = None) -> str:
        """A new token via `make key`'s own entry point; its last output line is the token."""
        env = {**os.environ, "LOCAL_STATE_DIR": str(self.state_dir)}
        limit = ["--rate-limit", str(rate_limit)] if rate_limit is not None else []
        result = subprocess.run(
            [sys.executable, "-m", "local.key", "--tenant", tenant, "--scopes", scopes, *limit],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        return result.stdout.strip().splitlines()[-1]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)
            item.add_marker(pytest.mark.xdist_group("e2e"))  # one stack, one worker


def runner_command(state_dir: Path, *extra: str) -> tuple[list[str], tuple[int, int, int]]:
    """`python -m local` in memory on three free ports: the command and its (API, DynamoDB, SQS) ports."""
    ports = free_port(), free_port(), free_port()
    flags = ["--port", "--dynamodb-port", "--sqs-port"]
    command = [sys.executable, "-m", "local", "--in-memory", "--no-demo", "--state-dir", str(state_dir)]
    command += [part for flag, port in zip(flags, ports, strict=True) for part in (flag, str(port))]
    return [*command, *extra], ports


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    state_dir = tmp_path_factory.mktemp("local-stack")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_ENDPOINT_URL", "RECORDS_", "AGGREGATES_"))}
    # A one-second aggregation window (deployed: 60 s) keeps the suite from waiting on totals.
    extra = ("--queue-visibility", "1", "--parameter", "AggregationWindowSeconds=1")
    command, (port, dynamodb_port, sqs_port) = runner_command(state_dir, *extra)
    log = (state_dir / "runner.log").open("wb")
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert process.poll() is None, (state_dir / "runner.log").read_text()
        try:
            requests.get(f"{base_url}/", timeout=1)
            break
        except requests.ConnectionError:
            time.sleep(0.2)
    else:
        process.kill()
        pytest.fail("the local stack did not start:\n" + (state_dir / "runner.log").read_text())
    yield LocalStack(base_url, dynamodb_port, sqs_port, state_dir)
    process.terminate()
    process.wait(timeout=30)
    # The runner logged at DEBUG (the suite's level) while every e2e test ran: no secret in it.
    lines = (state_dir / "runner.log").read_text(errors="replace").splitlines()
    assert not leaked_secrets(lines), leaked_secrets(lines)[:3]
    log.close()
