"""Cold start: what each handler loads at import (the cost is measured by ``make bench``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from local.template import Stack

STACK = Stack()
PROBE = """
import json, sys
sys.path[:0] = {paths!r}
import {module}
print(json.dumps(sorted(name for name in sys.modules if name.split(".")[0] in ("pydantic", "aws_xray_sdk"))))
"""
# Handlers that validate client input or shape their answer with pydantic models; the others must not load it.
VALIDATING = {"IngestEventsFunction", "IngestCloudEventsFunction", "IngestTracesFunction", "IngestQueueFunction"}
VALIDATING |= {"UsageQueryFunction"}
VALIDATING |= {f"{name}Function" for name in ("CreateAlert", "ListAlerts", "GetAlert", "UpdateAlert", "DeleteAlert")}
VALIDATING |= {"AlertStatusFunction", "AlertTriggersFunction"}
VALIDATING |= {f"{name}Function" for name in ("CreateGrant", "ListGrants", "GetGrant", "VoidGrant", "GetBalance")}
VALIDATING |= {f"{name}Function" for name in ("CreateReservation", "GetReservation", "ReleaseReservation")}


def _loaded(name: str, tracing: str) -> set[str]:
    function = STACK.functions()[name]
    paths = [str(function.code_dir), *(str(p) for p in STACK.layer_dirs())]
    script = PROBE.format(paths=paths, module=function.handler.rsplit(".", 1)[0])
    env = {**os.environ, "POWERTOOLS_TRACE_DISABLED": tracing, "AWS_DEFAULT_REGION": "us-east-1"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, env=env)
    return {module.split(".")[0] for module in json.loads(done.stdout)}


@pytest.mark.parametrize("name", sorted(STACK.functions()))
def test_handlers_load_neither_xray_sdk_by_default_nor_pydantic_unless_they_validate(name):
    loaded = _loaded(name, STACK.environment()["POWERTOOLS_TRACE_DISABLED"])
    assert "aws_xray_sdk" not in loaded
    assert ("pydantic" in loaded) == (name in VALIDATING)


def test_tracing_switched_on_loads_the_powertools_tracer():
    assert "aws_xray_sdk" in _loaded("IdentifierDatesFunction", "false")
