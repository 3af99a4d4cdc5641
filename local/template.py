"""template.yaml as the single source of truth: tables, functions, routes, event sources.

The local runner, the tests and the benchmarks all read the stack from here, so a route, table
or stream mapping added to the template is picked up everywhere with no other change.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "template.yaml"


class _CfnLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # libyaml parses it 5x faster, where built in
    """YAML loader that turns short-form intrinsics (``!Ref X``) into their long form."""


def _intrinsic(loader: yaml.Loader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


_CfnLoader.add_multi_constructor("!", _intrinsic)


def load(path: Path = TEMPLATE) -> dict[str, Any]:
    """The template as plain data, its ``Fn::ForEach`` loops expanded."""
    return expand_loops(yaml.load(path.read_text(), Loader=_CfnLoader))  # noqa: S506 - SafeLoader subclass


FOR_EACH = "Fn::ForEach::"


def expand_loops(node: Any) -> Any:
    """Expand ``Fn::ForEach`` (the ``AWS::LanguageExtensions`` transform) as CloudFormation does:
    the fragment once per item of the collection, ``${Identifier}`` replaced in its keys and strings."""
    if isinstance(node, list):
        return [expand_loops(value) for value in node]
    if not isinstance(node, dict):
        return node
    expanded: dict[str, Any] = {}
    for key, value in node.items():
        if key.startswith(FOR_EACH):
            identifier, collection, fragment = value
            for item in collection:
                expanded.update(expand_loops(_substitute(fragment, "${" + identifier + "}", item)))
        else:
            expanded[key] = expand_loops(value)
    return expanded


def _substitute(node: Any, placeholder: str, item: str) -> Any:
    if isinstance(node, str):
        return node.replace(placeholder, item)
    if isinstance(node, list):
        return [_substitute(value, placeholder, item) for value in node]
    if isinstance(node, dict):
        return {_substitute(k, placeholder, item): _substitute(v, placeholder, item) for k, v in node.items()}
    return node


@dataclass(frozen=True)
class Function:
    """One AWS::Serverless::Function, with its environment resolved."""

    logical_id: str
    code_dir: Path
    handler: str
    environment: dict[str, str]
    events: dict[str, dict[str, Any]]
    timeout_seconds: int = 3  # Lambda's defaults when neither the function nor Globals set them
    memory_mb: int = 128


@dataclass(frozen=True)
class Route:
    """An HttpApi event: ``METHOD path`` served by a function."""

    method: str
    path: str
    function: str
    pattern: re.Pattern[str] = field(compare=False)


@dataclass(frozen=True)
class StreamSource:
    """A DynamoDB stream event source mapping."""

    function: str
    table: str
    batch_size: int
    window_seconds: float
    filters: list[dict[str, Any]]
    bisect_on_error: bool
    report_item_failures: bool
    max_retries: int
    on_failure: str | None
    tumbling_seconds: int = 0


@dataclass(frozen=True)
class QueueSource:
    """An SQS event source mapping."""

    function: str
    queue: str
    batch_size: int
    report_item_failures: bool


class Stack:
    """The resources of template.yaml, with Ref/GetAtt/Sub resolved to local names."""

    def __init__(
        self, template: dict[str, Any] | None = None, table_prefix: str = "", parameters: dict[str, str] | None = None
    ):
        self.template = template or load()
        self.resources: dict[str, dict[str, Any]] = self.template["Resources"]
        self.table_prefix = table_prefix
        self.parameters = {k: str(v.get("Default", "")) for k, v in self.template.get("Parameters", {}).items()}
        unknown = sorted(set(parameters or {}) - set(self.parameters))
        if unknown:
            raise ValueError(f"Unknown template parameters: {', '.join(unknown)}")
        self.parameters.update(parameters or {})

    # -- intrinsic functions -------------------------------------------------------------
    def physical_name(self, logical_id: str) -> str:
        """The local name of a resource: tables get the prefix, others keep their logical id."""
        if self.resources[logical_id]["Type"] == "AWS::DynamoDB::Table":
            return self.table_prefix + logical_id
        return logical_id

    def resolve(self, value: Any) -> Any:
        """Resolve intrinsics against parameter defaults and local resource names."""
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if not isinstance(value, dict):
            return value
        if "Ref" in value:
            ref = value["Ref"]
            return self.parameters[ref] if ref in self.parameters else self.physical_name(ref)
        if "Fn::GetAtt" in value:
            logical_id, attribute = value["Fn::GetAtt"]
            return f"local:{attribute}:{self.physical_name(logical_id)}"
        if "Fn::If" in value:
            condition, when_true, when_false = value["Fn::If"]
            return self.resolve(when_true if self.condition(condition) else when_false)
        if "Fn::Sub" in value:
            text = value["Fn::Sub"] if isinstance(value["Fn::Sub"], str) else value["Fn::Sub"][0]
            return re.sub(r"\$\{([^}!]+)\}", lambda m: str(self.resolve({"Ref": m.group(1)})), text)
        return {k: self.resolve(v) for k, v in value.items()}

    def condition(self, name: str) -> bool:
        """A template condition (``Fn::Equals`` only) evaluated against parameter defaults."""
        left, right = self.resolve(self.template.get("Conditions", {})[name]["Fn::Equals"])
        return str(left) == str(right)

    def _of_type(self, kind: str) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.resources.items() if v["Type"] == kind}

    @staticmethod
    def _target(arn: str) -> str:
        return arn.rsplit(":", 1)[-1]

    def layer_dirs(self) -> list[Path]:
        """Source folders of the template's layers (what Lambda puts on the import path)."""
        layers = self._of_type("AWS::Serverless::LayerVersion").values()
        return [ROOT / layer["Properties"]["ContentUri"] for layer in layers]

    # -- tables --------------------------------------------------------------------------
    def tables(self) -> dict[str, dict[str, Any]]:
        """``create_table`` arguments of every table, keyed by logical id."""
        result = {}
        for logical_id, resource in self._of_type("AWS::DynamoDB::Table").items():
            props = self.resolve(resource["Properties"])
            spec: dict[str, Any] = {
                "TableName": self.physical_name(logical_id),
                "AttributeDefinitions": props["AttributeDefinitions"],
                "KeySchema": props["KeySchema"],
                "BillingMode": props.get("BillingMode", "PAY_PER_REQUEST"),
            }
            if props.get("GlobalSecondaryIndexes"):
                spec["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
            if props.get("StreamSpecification"):
                view = props["StreamSpecification"]["StreamViewType"]
                spec["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": view}
            result[logical_id] = spec
        return result

    # -- functions -----------------------------------------------------------------------
    def functions(self) -> dict[str, Function]:
        """Every function with Globals merged in."""
        globals_ = self.template.get("Globals", {}).get("Function", {})
        global_env = globals_.get("Environment", {}).get("Variables", {})
        result = {}
        for logical_id, resource in self._of_type("AWS::Serverless::Function").items():
            props = resource["Properties"]
            env = {**global_env, **props.get("Environment", {}).get("Variables", {})}
            result[logical_id] = Function(
                logical_id=logical_id,
                code_dir=ROOT / props["CodeUri"],
                handler=props.get("Handler", globals_.get("Handler", "")),
                environment={k: str(v) for k, v in self.resolve(env).items()},
                events=self.resolve(props.get("Events", {})),
                timeout_seconds=int(self.resolve(props.get("Timeout", globals_.get("Timeout", 3)))),
                memory_mb=int(self.resolve(props.get("MemorySize", globals_.get("MemorySize", 128)))),
            )
        return result

    def environment(self) -> dict[str, str]:
        """The union of every function's environment; the runner is one process, so they must agree."""
        merged: dict[str, str] = {}
        for function in self.functions().values():
            for key, value in function.environment.items():
                if merged.setdefault(key, value) != value:
                    raise ValueError(f"Functions disagree on {key}: {merged[key]!r} vs {value!r}")
        return merged

    def schedules(self) -> list[tuple[str, str]]:
        """Every ScheduleV2 / Schedule event: (function, schedule expression)."""
        return [
            (name, event["Properties"]["ScheduleExpression"])
            for name, function in self.functions().items()
            for event in function.events.values()
            if event["Type"] in ("ScheduleV2", "Schedule")
        ]

    def routes(self) -> list[Route]:
        """Every HttpApi route, static paths before parameterized ones."""
        routes = []
        for name, function in self.functions().items():
            for event in function.events.values():
                if event["Type"] != "HttpApi":
                    continue
                path, method = event["Properties"]["Path"], event["Properties"]["Method"].upper()
                regex = "^" + re.sub(r"\\\{([^}+]+)\\\}", r"(?P<\1>[^/]+)", re.escape(path)) + "$"
                routes.append(Route(method=method, path=path, function=name, pattern=re.compile(regex)))
        return sorted(routes, key=lambda r: ("{" in r.path, r.path))

    def stream_sources(self) -> list[StreamSource]:
        """Every DynamoDB stream event source mapping."""
        result = []
        for name, function in self.functions().items():
            for event in function.events.values():
                if event["Type"] != "DynamoDB":
                    continue
                props = event["Properties"]
                on_failure = props.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination")
                result.append(
                    StreamSource(
                        function=name,
                        table=self._target(props["Stream"]),
                        batch_size=int(props.get("BatchSize", 100)),
                        window_seconds=float(props.get("MaximumBatchingWindowInSeconds", 0)),
                        filters=[f["Pattern"] for f in props.get("FilterCriteria", {}).get("Filters", [])],
                        bisect_on_error=bool(props.get("BisectBatchOnFunctionError", False)),
                        report_item_failures="ReportBatchItemFailures" in props.get("FunctionResponseTypes", []),
                        max_retries=int(props.get("MaximumRetryAttempts", -1)),
                        on_failure=self._target(on_failure) if on_failure else None,
                        tumbling_seconds=int(props.get("TumblingWindowInSeconds", 0)),
                    )
                )
        return result

    def stream_source_of(self, function: str) -> StreamSource:
        """The stream event source mapping of one function."""
        (source,) = [s for s in self.stream_sources() if s.function == function]
        return source

    def queue_source_of(self, function: str) -> QueueSource:
        """The SQS event source mapping of one function."""
        (source,) = [s for s in self.queue_sources() if s.function == function]
        return source

    def queue_sources(self) -> list[QueueSource]:
        """Every SQS event source mapping."""
        result = []
        for name, function in self.functions().items():
            for event in function.events.values():
                if event["Type"] == "SQS":
                    props = event["Properties"]
                    result.append(
                        QueueSource(
                            function=name,
                            queue=self._target(props["Queue"]),
                            batch_size=int(props.get("BatchSize", 10)),
                            report_item_failures="ReportBatchItemFailures" in props.get("FunctionResponseTypes", []),
                        )
                    )
        return result
