"""The bench's lanes: every section runs once, and a step alone never overlaps a shared one."""

from __future__ import annotations

import threading

import pytest

from bench import lanes
from bench.lanes import ALONE, BESIDE, SHARED
from bench.run import SECTIONS


@pytest.fixture(autouse=True)
def _own_locks(tmp_path, monkeypatch):
    monkeypatch.setattr(lanes, "LOCK", tmp_path / "machine.lock")
    monkeypatch.setattr(lanes, "GATE", tmp_path / "machine.gate")


def _names(entries) -> list[str]:
    return [name for entry in entries for name in (_names(entry) if isinstance(entry, tuple) else [entry])]


def test_the_lanes_run_every_section_once():
    assert sorted(_names((*lanes.LANES, *lanes.LAST))) == sorted(SECTIONS)


def _in_thread(use: str, order: list[str], label: str) -> threading.Thread:
    def step() -> None:
        with lanes.machine(use):
            order.append(label)

    thread = threading.Thread(target=step)
    thread.start()
    return thread


def test_a_step_alone_waits_for_the_shared_ones_and_no_shared_one_overtakes_it():
    order: list[str] = []
    with lanes.machine(SHARED):
        with lanes.machine(SHARED):  # another lane's shared step does not wait
            order.append("shared beside shared")
        with lanes.machine(BESIDE):  # nor does a step beside
            order.append("beside")
        alone = _in_thread(ALONE, order, "alone")
        alone.join(timeout=0.5)
        assert alone.is_alive()  # held off while a shared step runs
        later = _in_thread(SHARED, order, "a shared step that came later")
        later.join(timeout=0.5)
        assert later.is_alive()  # queued behind the step waiting alone
        order.append("the first shared step ends")
    alone.join(timeout=10)
    later.join(timeout=10)
    assert order == [
        "shared beside shared",
        "beside",
        "the first shared step ends",
        "alone",
        "a shared step that came later",
    ]


def test_a_step_beside_runs_while_one_is_alone():
    order: list[str] = []
    with lanes.machine(ALONE):
        beside = _in_thread(BESIDE, order, "beside")
        beside.join(timeout=10)
        assert not beside.is_alive()
        order.append("alone ends")
    assert order == ["beside", "alone ends"]
