"""Two lanes of sections side by side, so that a full ``make bench`` fits in 15 minutes on 2 cores.

DynamoDB Local applies writes one at a time: while a section loads a data set, one core idles. So
the sections run as processes in two lanes (each section on a DynamoDB Local of its own), and
every step says how it uses the machine:

* a step whose figure is a latency or a commit time takes the machine **alone**: it waits until no
  other step runs, and no other step starts while it runs;
* every other step (a data set's load, capacity units, delays bound by the 60 s aggregation
  window) **shares** it with the other lane's shared steps.

The two are an ``flock`` on one file: shared and exclusive. What each step waited for is not in
its time.
"""

from __future__ import annotations

import fcntl
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from local.template import ROOT

LOCK = ROOT / "bench" / "results" / ".machine.lock"
# Each lane's sections, in order; the lanes' loads overlap, and their quiet steps take turns.
LANES = (("backfill", "hostile"), ("live", "crowd", "poison"))
LAST = ("coldstart",)  # alone, after both lanes: fresh processes time their own import


@contextmanager
def machine(alone: bool) -> Iterator[None]:
    """Hold the machine for one step: alone (exclusively), or shared with the other lane."""
    LOCK.parent.mkdir(parents=True, exist_ok=True)
    with LOCK.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX if alone else fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _run_section(name: str, options: list[str], parts: Path) -> tuple[dict[str, Any], float]:
    """One section in a process of its own: its part of the results, and how long it took."""
    part = parts / f"{name}.json"
    started = time.perf_counter()
    command = [sys.executable, "-m", "bench", "--section", name, "--part", str(part), *options]
    subprocess.run(command, check=True, cwd=ROOT)
    return json.loads(part.read_text()), time.perf_counter() - started


def run_all(options: list[str], parts: Path) -> dict[str, tuple[dict[str, Any], float]]:
    """Every section, the lanes side by side, then the last ones alone; by section name."""
    parts.mkdir(parents=True, exist_ok=True)
    done: dict[str, tuple[dict[str, Any], float]] = {}

    def lane(sections: tuple[str, ...]) -> None:
        for name in sections:
            done[name] = _run_section(name, options, parts)

    with ThreadPoolExecutor(len(LANES)) as pool:
        list(pool.map(lane, LANES))
    lane(LAST)
    return done
