"""Sections side by side, so that a full ``make bench`` fits in 15 minutes on 2 cores.

DynamoDB Local applies writes one at a time: while a section loads a data set, one core idles. So
the sections run as processes in lanes side by side (each section on a DynamoDB Local of its own),
and every step says how it uses the machine:

* ``ALONE``: a step whose figure is a latency or a commit time waits until no shared step runs, and
  none starts while it runs (nor while it waits: it goes first);
* ``SHARED``: a data set's load and the capacity-unit steps share the machine with one another;
* ``BESIDE``: a step bound by the 60 s aggregation window (another tenant's delay beside poison or
  many alerts), which mostly waits for windows, runs whatever else does.

``ALONE`` and ``SHARED`` are an ``flock`` on one file, exclusive and shared, behind a second lock
that a waiting ``ALONE`` step holds so that no new shared step overtakes it. What a step waited
for is not in its time.
"""

from __future__ import annotations

import fcntl
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from local.template import ROOT

LOCK = ROOT / "bench" / "results" / ".machine.lock"
GATE = ROOT / "bench" / "results" / ".machine.gate"
ALONE, SHARED, BESIDE = "alone", "shared", "beside"
# Each lane's sections in order; a tuple inside a lane runs side by side. The loads overlap; live
# traffic keeps its 100 events a second beside the backfill alone; then poison and hostile wait out
# their windows beside the loads, and take their turns alone; then credits and the sending side,
# while the backfill's reads and the swarm's window finish.
LANES = (("backfill", "swarm"), ("live", ("crowd", "poison", "hostile"), "credits", "sending"))
LAST = ("coldstart",)  # alone, after every lane: fresh processes time their own import


@contextmanager
def _locked(path: Path, mode: int) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, mode)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def machine(use: str) -> Iterator[None]:
    """Hold the machine for one step as ``use`` says: ``ALONE``, ``SHARED`` or ``BESIDE``."""
    with ExitStack() as held:
        if use != BESIDE:
            with _locked(GATE, fcntl.LOCK_EX):  # in turn: no shared step overtakes one waiting alone
                held.enter_context(_locked(LOCK, fcntl.LOCK_EX if use == ALONE else fcntl.LOCK_SH))
        yield


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

    def lane(sections: tuple[str | tuple[str, ...], ...]) -> None:
        for entry in sections:
            if isinstance(entry, tuple):
                side_by_side(tuple((name,) for name in entry))
            else:
                done[entry] = _run_section(entry, options, parts)

    def side_by_side(lanes: tuple[tuple[str | tuple[str, ...], ...], ...]) -> None:
        with ThreadPoolExecutor(len(lanes)) as pool:
            list(pool.map(lane, lanes))

    side_by_side(LANES)
    lane(LAST)
    return done
