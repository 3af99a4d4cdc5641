"""Cold start of every handler: import plus init in a lean virtualenv holding only the layer's
dependencies (and boto3, which the Lambda runtime provides), median of fresh processes."""

from __future__ import annotations

import statistics
import subprocess
import sys
from pathlib import Path

from local.template import ROOT, Stack

LEAN = ROOT / ".venv-lean"
PROBE = """
import sys, time
started = time.perf_counter()
sys.path[:0] = {paths!r}
{body}
print((time.perf_counter() - started) * 1000)
"""
FLOOR = "import boto3\nboto3.client('dynamodb', region_name='us-east-1')"


def lean_python() -> Path:
    """The lean virtualenv's interpreter, created on first use."""
    python = LEAN / "bin" / "python"
    stamp = LEAN / ".installed"
    requirements = ROOT / "shared" / "requirements.txt"
    if not stamp.exists() or stamp.stat().st_mtime < requirements.stat().st_mtime:
        subprocess.run([sys.executable, "-m", "venv", str(LEAN)], check=True)
        boto3 = next(
            line for line in (ROOT / "requirements-dev.txt").read_text().splitlines() if line.startswith("boto3")
        )
        command = [str(python), "-m", "pip", "install", "--quiet", "-r", str(requirements), boto3]
        subprocess.run(command, check=True)
        stamp.touch()
    return python


def _median_ms(python: Path, paths: list[str], body: str, runs: int, env: dict[str, str]) -> float:
    script = PROBE.format(paths=paths, body=body)
    samples = [
        float(subprocess.run([str(python), "-c", script], capture_output=True, text=True, check=True, env=env).stdout)
        for _ in range(runs)
    ]
    return round(statistics.median(samples), 1)


def measure(runs: int, env: dict[str, str]) -> dict[str, float]:
    """Median import+init milliseconds per function, and the boto3 floor."""
    python = lean_python()
    layers = [str(p) for p in Stack().layer_dirs()]
    results = {"floor": _median_ms(python, [], FLOOR, runs, env)}
    for name, function in sorted(Stack().functions().items()):
        module = function.handler.rsplit(".", 1)[0]
        # Import plus the DynamoDB client the first request creates, to compare like with like.
        body = f"import {module}\nfrom meter import dynamo\ndynamo.client()"
        results[name] = _median_ms(python, [str(function.code_dir), *layers], body, runs, env)
    return results
