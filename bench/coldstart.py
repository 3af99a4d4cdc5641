"""Cold start of every handler: import plus init in a lean virtualenv holding only the layer's
dependencies (and boto3, which the Lambda runtime provides), median of fresh processes."""

from __future__ import annotations

import compileall
import py_compile
import shutil
import statistics
import subprocess
import sys
import tempfile
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


def _sample_ms(python: Path, paths: list[str], body: str, env: dict[str, str]) -> float:
    script = PROBE.format(paths=paths, body=body)
    done = subprocess.run([str(python), "-c", script], capture_output=True, text=True, check=True, env=env)
    return float(done.stdout)


def measure(runs: int, env: dict[str, str]) -> dict[str, float]:
    """Median import+init milliseconds per function, and the boto3 floor.

    Rounds interleave the floor and every function, so drift in the machine's load affects
    them alike rather than skewing whichever ran last.
    """
    python = lean_python()
    with tempfile.TemporaryDirectory(prefix="meter-coldstart-") as build:
        return _measure_build(python, Path(build), runs, env)


def _measure_build(python: Path, build: Path, runs: int, env: dict[str, str]) -> dict[str, float]:
    stack = Stack()
    layers = [str(_compiled_copy(source, build / "layers" / str(i))) for i, source in enumerate(stack.layer_dirs())]
    # Import plus the DynamoDB client the first request creates, to compare like with like.
    probes = {"floor": ([], FLOOR)}
    handler_body = "import {}\nfrom meter.dal import dynamo\ndynamo.client()"
    for name, function in sorted(stack.functions().items()):
        module = function.handler.rsplit(".", 1)[0]
        code = _compiled_copy(function.code_dir, build / "functions" / name)
        probes[name] = ([str(code), *layers], handler_body.format(module))
    for paths, body in probes.values():  # warm the file cache, outside the timed rounds
        _sample_ms(python, paths, body, env)
    samples: dict[str, list[float]] = {name: [] for name in probes}
    for _ in range(runs):
        for name, (paths, body) in probes.items():
            samples[name].append(_sample_ms(python, paths, body, env))
    return {name: round(statistics.median(values), 1) for name, values in samples.items()}


def _compiled_copy(source: Path, target: Path) -> Path:
    """Copy code as ``make build`` ships it: with bytecode whose validity ignores file times."""
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "requirements.txt"))
    compileall.compile_dir(target, quiet=1, invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
    return target
