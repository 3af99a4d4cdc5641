"""The layer's packages import one another in one direction only (docs/architecture.md)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

LAYER = Path(__file__).resolve().parents[2] / "shared" / "meter"
# What each package may import, besides itself; the edge (api) may import every package.
MAY_IMPORT = {
    "core": set(),
    "dal": {"core"},
    "reading": {"core", "dal"},
    "ingest": {"core", "dal"},
    "alerts": {"core", "dal", "reading", "credits"},
    "credits": {"core", "dal"},
    "counting": {"core", "dal", "reading", "alerts", "credits"},
    "api": {"core", "dal", "reading", "ingest", "alerts", "counting", "credits"},
}


def _imported_packages(path: Path) -> set[str]:
    """The ``meter`` sub-packages a module imports, at its top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] if node.module != "meter" else [f"meter.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        found |= {name.split(".")[1] for name in names if name.startswith("meter.")}
    return found


def test_every_module_belongs_to_a_package_and_the_top_level_holds_none():
    assert sorted(p.name for p in LAYER.glob("*.py")) == ["__init__.py"]
    assert {p.name for p in LAYER.iterdir() if p.is_dir() and p.name != "__pycache__"} == set(MAY_IMPORT)


@pytest.mark.parametrize("package", sorted(MAY_IMPORT))
def test_a_package_imports_only_the_packages_beneath_it(package):
    offending = {
        str(path.relative_to(LAYER)): sorted(imported - MAY_IMPORT[package] - {package})
        for path in sorted((LAYER / package).glob("*.py"))
        if (imported := _imported_packages(path)) - MAY_IMPORT[package] - {package}
    }
    assert offending == {}


def test_the_check_sees_an_upward_import(tmp_path):
    module = tmp_path / "probe.py"
    module.write_text("def f():\n    from meter.api.http import api_handler\n")
    assert _imported_packages(module) == {"api"}


# What only the data-access package may write: expressions, their placeholders' values, raw keys.
DYNAMODB_SPEECH = re.compile(
    r"\b(?:Update|Condition|KeyCondition|Filter)Expression\b|ExpressionAttribute(?:Names|Values)|\{\"[SN]\": "
)


def _speaks_dynamodb(source: str) -> list[str]:
    return sorted({match.group(0) for match in DYNAMODB_SPEECH.finditer(source)})


def test_only_the_data_access_package_speaks_dynamodb():
    """No module outside ``meter.dal`` (and no handler or tool) writes an expression or a raw key."""
    root = LAYER.parents[1]
    outside = [p for p in sorted(LAYER.rglob("*.py")) if "dal" not in p.relative_to(LAYER).parts]
    outside += sorted((root / "functions").rglob("*.py")) + sorted((root / "tools").rglob("*.py"))
    offending = {str(p.relative_to(root)): found for p in outside if (found := _speaks_dynamodb(p.read_text()))}
    assert offending == {}


def test_the_speech_check_sees_an_expression_and_a_raw_key():
    source = 'store.update(key, UpdateExpression="SET a = :a")\nkey = {"pk": {"S": pk}}\n'
    assert _speaks_dynamodb(source) == ["UpdateExpression", '{"S": ']
