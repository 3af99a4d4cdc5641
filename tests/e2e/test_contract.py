"""The OpenAPI 3.1 contract: it covers every route, and schemathesis fuzzes the local stack
against it with zero server errors and zero responses that break it."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import requests

from local.template import Stack

CHECKS = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
]


def test_the_document_covers_every_route_of_the_template(stack):
    document = requests.get(f"{stack.base_url}/openapi.json", timeout=10).json()
    assert document["openapi"] == "3.1.0"
    documented = {(method.upper(), path) for path, item in document["paths"].items() for method in item}
    assert documented == {(route.method, route.path) for route in Stack().routes()}


def test_swagger_ui_is_served_with_its_assets(stack):
    page = requests.get(f"{stack.base_url}/docs", timeout=10)
    assert page.status_code == 200 and "/openapi.json" in page.text
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css"):
        assert requests.get(f"{stack.base_url}/docs/{asset}", timeout=10).status_code == 200


# Schemathesis's CLI, with ast.parse taken by one thread at a time: on Python 3.11, two threads parsing
# at once can fail with "SystemError: AST constructor recursion depth mismatch" (CPython gh-106905,
# fixed from 3.12), which Hypothesis does when it describes the strategies each worker draws from.
SCHEMATHESIS = """
import ast, sys, threading
_parse, _lock = ast.parse, threading.Lock()
def parse(*args, **kwargs):
    with _lock:
        return _parse(*args, **kwargs)
ast.parse = parse
from schemathesis.cli import schemathesis
sys.exit(schemathesis())
"""


def test_schemathesis_finds_no_server_error_and_no_contract_violation(stack, tmp_path):
    tenant = f"fuzz{uuid.uuid4().hex[:6]}"
    token = stack.key(tenant, rate_limit=0)  # fuzzing outpaces the default per-key limit
    command = [
        sys.executable,
        "-c",
        SCHEMATHESIS,
        "run",
        f"{stack.base_url}/openapi.json",
        "--header",
        f"Authorization: Bearer {token}",
        "--checks",
        ",".join(CHECKS),
        "--max-examples",
        os.environ.get("FUZZ_EXAMPLES", "25"),
        "--workers",
        "2",
        "--no-color",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=540, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
