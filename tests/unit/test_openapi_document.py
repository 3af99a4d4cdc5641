"""The committed OpenAPI document is the one the code generates."""

from __future__ import annotations

import json
from pathlib import Path

from local.openapi import document

COMMITTED = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"


def test_the_committed_document_is_current():
    generated = json.dumps(document(), indent=2) + "\n"
    assert COMMITTED.read_text() == generated, "docs/openapi.json is stale: run `make openapi` and commit it"


def test_the_document_describes_every_route_of_the_template():
    from local.template import Stack

    paths = json.loads(COMMITTED.read_text())["paths"]
    routes = {(route.path, route.method.lower()) for route in Stack().routes() if route.path != "/{proxy+}"}
    described = {(path, method) for path, operations in paths.items() for method in operations}
    assert routes - described == set()


def test_the_record_lists_shape_names_every_id_filter_as_optional():
    from meter.api.chatbotkit import ID_FILTERS

    item = json.loads(COMMITTED.read_text())["components"]["schemas"]["ListItem"]
    assert set(item["properties"]) - set(item["required"]) == {"meta", *ID_FILTERS}
    assert item["additionalProperties"] is False
