"""The OpenAPI 3.1 document of every route in template.yaml (``/openapi.json`` on the local stack).

The event schema comes from the pydantic model the ingest handler validates with; response
schemas describe exactly what the use cases return, and every error body is one of ours.
``python -m local.openapi`` prints it.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import TypeAdapter

from meter.api import shapes
from meter.api.alerts import Alert, AlertChange, AlertList, AlertSpec, AlertStatus, TriggerList
from meter.api.chatbotkit import ID_FILTERS, MAX_TAKE
from meter.api.credits import (
    BalanceShown,
    GrantList,
    GrantShown,
    GrantSpec,
    Insufficient,
    ReservationMade,
    ReservationShown,
    ReservationSpec,
)
from meter.api.usage_query import QueryResult
from meter.ingest.batch import MAX_BATCH_EVENTS
from meter.ingest.cloudevents import MAX_CLOUDEVENTS, CloudEvent
from meter.ingest.models import UsageEvent
from meter.reading.series import GROUPS, MAX_RAW_RECORDS, MAX_ROWS, MEASURES

Schema = dict[str, Any]

INTEGER: Schema = {"type": "integer"}
STRING: Schema = {"type": "string"}


def _object(properties: dict[str, Schema], optional: tuple[str, ...] = ()) -> Schema:
    required = [name for name in properties if name not in optional]
    return {"type": "object", "properties": properties, "required": required, "additionalProperties": False}


def _json(schema: Schema, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


ERROR = _object(
    {"error": STRING, "details": {"type": "array", "items": {"type": "object"}}},
    optional=("details",),
)
GRADIENT_ERROR = _object({"id": STRING, "message": STRING, "request_id": STRING})
GATEWAY_MESSAGE = _object({"message": STRING})  # API Gateway's own 401 when no Authorization header
RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait", "schema": INTEGER}}


def _closed(schema: Any) -> Any:
    """Every object with named properties closed to others (what the use cases return, exactly)."""
    if isinstance(schema, dict):
        schema = {key: _closed(value) for key, value in schema.items()}
        if schema.get("type") == "object" and "properties" in schema:
            schema.setdefault("additionalProperties", False)
    elif isinstance(schema, list):
        schema = [_closed(value) for value in schema]
    return schema


def _shape(shape: Any, definitions: dict[str, Schema]) -> Schema:
    """A reference to a typed shape of ``meter.api.shapes``, its schema (and those it nests) gathered
    into ``definitions``."""
    schema = _closed(TypeAdapter(shape).json_schema(ref_template="#/components/schemas/{model}"))
    definitions.update(schema.pop("$defs", {}))
    definitions[shape.__name__] = schema
    return {"$ref": f"#/components/schemas/{shape.__name__}"}


def _errors(shape: Schema, *statuses: int) -> dict[str, Any]:
    descriptions = {
        400: "A parameter or field is invalid; the message names it",
        403: "The key lacks the route's scope",
        404: "Nothing of this tenant matches",
        409: "An id is stored with a different body, or a limit is reached (the message says which)",
        413: "Body or batch too large",
    }
    responses = {
        "401": _json({"anyOf": [shape, GATEWAY_MESSAGE]}, "Missing, malformed, unknown, revoked or wrong key"),
        "429": {**_json(shape, "Over the key's rate limit"), "headers": RETRY_AFTER},
    }
    responses.update({str(status): _json(shape, descriptions[status]) for status in statuses})
    return responses


def _path(name: str) -> Schema:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string", "minLength": 1}}


def _query(name: str, description: str, schema: Schema = STRING) -> Schema:
    return {"name": name, "in": "query", "required": False, "description": description, "schema": schema}


INSTANT: Schema = {"anyOf": [{"type": "string", "format": "date-time"}, {"type": "string", "format": "date"}]}
RANGE = [
    _query("from", "Start, inclusive: ISO 8601 date-time (UTC if no zone) or date", INSTANT),
    _query("to", "End, inclusive of the unit written (a date covers the whole day)", INSTANT),
]


def _get(summary: str, parameters: list[Schema], ok: dict[str, Any], shape: Schema = ERROR, *errors: int) -> Schema:
    return {
        "get": {
            "summary": summary,
            "parameters": parameters,
            "responses": {"200": ok, **_errors(shape, 400, 403, *errors)},
        }
    }


def _repeatable(name: str, description: str) -> Schema:
    return {**_query(name, description, {"type": "array", "items": STRING}), "style": "form", "explode": True}


def _query_route() -> Schema:
    """``GET /v1/usage/query``: parameters, and the response schema generated from its pydantic models."""
    result = QueryResult.model_json_schema(by_alias=True, ref_template="#/components/schemas/{model}")
    definitions = result.pop("$defs", {})
    instant = "RFC 3339 instant with an offset, or a bare date read in timeZone"
    parameters = [
        _query("from", f"Start, inclusive: {instant} (default: the first day with usage)", INSTANT),
        _query("to", f"End, exclusive: {instant} (default: the end of the current quarter hour)", INSTANT),
        _query(
            "period", "billing: from the start of the current billing period (instead of from)", {"enum": ["billing"]}
        ),
        _query(
            "windowSize", "Local calendar windows; absent: one row for the range", {"enum": ["HOUR", "DAY", "MONTH"]}
        ),
        _query("timeZone", "IANA time zone of the windows and of bare dates (default UTC)"),
        _query("measure", f"{', '.join(MEASURES)} (default credits), or count:<type>"),
        {**_repeatable("groupBy", "Repeatable"), "schema": {"type": "array", "items": {"enum": list(GROUPS)}}},
        *[_repeatable(name, f"Only these {name} values (repeatable: any of)") for name in GROUPS],
    ]
    summary = (
        f"Usage in local windows of any time zone, grouped and filtered, exact (JSON, or CSV with Accept: "
        f"text/csv); at most {MAX_ROWS:,} rows, and {MAX_RAW_RECORDS:,} raw events for combinations no "
        "aggregate holds"
    )
    ok = {
        "description": "Rows ascending by windowStart, then group; only non-zero values",
        "content": {"application/json": {"schema": result}, "text/csv": {"schema": STRING}},
    }
    return {
        "get": {"summary": summary, "parameters": parameters, "responses": {"200": ok, **_errors(ERROR, 400, 403)}}
    }, definitions


def _model(model: Any, definitions: dict[str, Schema]) -> Schema:
    """A pydantic model's schema, its nested definitions gathered into ``definitions``."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    definitions.update(schema.pop("$defs", {}))
    return schema


def _alert_routes() -> tuple[dict[str, Any], dict[str, Schema]]:
    """The alerts API, its shapes generated from the pydantic models the handlers use."""
    defs: dict[str, Schema] = {}
    alert, spec, change = _model(Alert, defs), _model(AlertSpec, defs), _model(AlertChange, defs)
    one = _path("alertId")
    cursor = _query("cursor", "The previous page's cursor, unchanged")

    body = _body
    paths = {
        "/v1/alerts": {
            "post": {
                "summary": "Create a threshold alert (scope admin); fires at once for thresholds already reached",
                "requestBody": body(spec),
                "responses": {
                    "201": _json(alert, "The alert; signingSecret (shown once) when a webhook is set"),
                    **_errors(ERROR, 400, 403, 409, 413),
                },
            },
            **_get("The tenant's alerts, by id", [cursor], _json(_model(AlertList, defs), "One page")),
        },
        "/v1/alerts/{alertId}": {
            **_get("One alert", [one], _json(alert, "The alert"), ERROR, 404),
            "patch": {
                "summary": "Rename an alert, change its thresholds or webhook (scope admin)",
                "parameters": [one],
                "requestBody": body(change),
                "responses": {"200": _json(alert, "The alert"), **_errors(ERROR, 400, 403, 404, 413)},
            },
            "delete": {
                "summary": "Delete an alert (scope admin)",
                "parameters": [one],
                "responses": {
                    "200": _json(_shape(shapes.Deleted, defs), "Deleted"),
                    **_errors(ERROR, 403, 404),
                },
            },
        },
        "/v1/alerts/{alertId}/status": _get(
            "The current period's exact value, thresholds crossed and the next one",
            [one],
            _json(_model(AlertStatus, defs), "Where the period stands"),
            ERROR,
            404,
        ),
        "/v1/alerts/{alertId}/triggers": _get(
            "Every firing, newest first, with its delivery",
            [one, cursor],
            _json(_model(TriggerList, defs), "One page"),
            ERROR,
            404,
        ),
    }
    return paths, defs


def _body(schema: Schema) -> Schema:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _credit_routes() -> tuple[dict[str, Any], dict[str, Schema]]:
    """Grants, balances and reservations, their shapes generated from the handlers' pydantic models."""
    defs: dict[str, Schema] = {}
    grant, held, made = _model(GrantShown, defs), _model(ReservationShown, defs), _model(ReservationMade, defs)
    subject = [_query("identifier", "One end user"), _query("agentId", "One agent (neither: the tenant)")]
    grant_id, reservation_id = _path("grantId"), _path("reservationId")
    paths = {
        "/v1/grants": {
            "post": {
                "summary": "Grant credits to a subject (scope admin); the same id and body again is the same grant",
                "requestBody": _body(_model(GrantSpec, defs)),
                "responses": {
                    "201": _json(grant, "The grant, with what is left of it"),
                    "200": _json(grant, "The same body again: the grant as stored"),
                    **_errors(ERROR, 400, 403, 409, 413),
                },
            },
            **_get(
                "A subject's grants in the order they were made",
                [*subject, _query("cursor", "The previous page's cursor, unchanged")],
                _json(_model(GrantList, defs), "One page"),
            ),
        },
        "/v1/grants/{grantId}": {
            **_get("One grant", [grant_id], _json(grant, "The grant"), ERROR, 404),
            "delete": {
                "summary": "Void a grant from now on (scope admin); what it covered stays covered",
                "parameters": [grant_id],
                "responses": {"200": _json(grant, "The grant, voided"), **_errors(ERROR, 403, 404)},
            },
        },
        "/v1/balance": _get(
            "A subject's credits now: available, granted, consumed, reserved, overage, grants in burn order",
            subject,
            _json(_model(BalanceShown, defs), "The balance"),
        ),
        "/v1/reservations": {
            "post": {
                "summary": "Hold credits on every listed subject at once, or on none (scope ingest)",
                "requestBody": _body(_model(ReservationSpec, defs)),
                "responses": {
                    "201": _json(made, "Held on every subject"),
                    "200": _json(made, "The same request again"),
                    "402": _json(_model(Insufficient, defs), "A subject has not the credits; nothing was held"),
                    **_errors(ERROR, 400, 403, 409, 413),
                },
            }
        },
        "/v1/reservations/{reservationId}": _get(
            "Where a reservation stands (scope ingest)", [reservation_id], _json(held, "The reservation"), ERROR, 404
        ),
        "/v1/reservations/{reservationId}/release": {
            "post": {
                "summary": "Give back what is left of a hold at once (scope ingest)",
                "parameters": [reservation_id],
                "responses": {"200": _json(held, "The reservation, released"), **_errors(ERROR, 403, 404)},
            }
        },
    }
    return paths, defs


def _sending_routes(ingest_result: Schema) -> dict[str, Any]:
    """The formats producers already emit: OpenMeter's CloudEvents ingest and OTLP/HTTP traces."""
    cloudevent = CloudEvent.model_json_schema()
    scalar = {"type": ["string", "number", "boolean", "null"]}
    cloudevent["additionalProperties"] = scalar  # extension attributes: scalars, as CloudEvents 1.0 defines them
    cloudevent["properties"]["data"] = {  # any JSON object; described two levels deep
        "anyOf": [
            {
                "type": "object",
                "additionalProperties": {"anyOf": [scalar, {"type": "object", "additionalProperties": scalar}]},
            },
            {"type": "null"},
        ],
    }
    batch = {"type": "array", "items": cloudevent, "minItems": 1, "maxItems": MAX_CLOUDEVENTS}
    attribute = _object(
        {
            "key": STRING,
            "value": _object(
                {"stringValue": STRING, "intValue": {"type": ["string", "integer"]}},
                optional=("stringValue", "intValue"),
            ),
        }
    )
    span = _object(
        {
            "traceId": STRING,
            "spanId": STRING,
            "endTimeUnixNano": STRING,
            "attributes": {"type": "array", "items": attribute},
        },
        optional=("endTimeUnixNano", "attributes"),
    )
    scope_spans = _object({"spans": {"type": "array", "items": span}})
    resource_spans = _object({"scopeSpans": {"type": "array", "items": scope_spans}})
    otlp_json = {
        **_object({"resourceSpans": {"type": "array", "items": resource_spans}}),
        "description": "ExportTraceServiceRequest in OTLP/JSON (ids in hex); the fields read are shown",
    }
    otlp_answer = {"type": "object", "description": "ExportTraceServiceResponse; partialSuccess names rejected spans"}
    binary = {"type": "string", "format": "binary"}
    return {
        "/api/v1/events": _post(
            "OpenMeter: ingest CloudEvents, each counted once per source and id (scope ingest)",
            {
                "application/cloudevents+json": {"schema": cloudevent},
                "application/cloudevents-batch+json": {"schema": batch},
                "application/json": {"schema": {"anyOf": [cloudevent, batch]}},
            },
            {
                "204": {"description": "Every event stored now or before"},
                "409": _json(ingest_result, "An id is stored with a different body"),
                "415": _json(ERROR, "Not a CloudEvents media type"),
            },
        ),
        "/v1/traces": _post(
            "OTLP/HTTP: spans with GenAI token usage become usage events (scope ingest)",
            {"application/x-protobuf": {"schema": binary}, "application/json": {"schema": otlp_json}},
            {
                "200": {
                    "description": "Stored; spans that cannot count are rejected alone, in partial success",
                    "content": {
                        "application/x-protobuf": {"schema": binary},
                        "application/json": {"schema": otlp_answer},
                    },
                },
                "415": _json(ERROR, "Neither protobuf nor JSON"),
            },
        ),
    }


def _post(summary: str, content: dict[str, Any], responses: dict[str, Any]) -> Schema:
    """A POST route whose body comes in the media types of ``content``."""
    body = {"required": True, "content": content}
    return {
        "post": {"summary": summary, "requestBody": body, "responses": {**responses, **_errors(ERROR, 400, 403, 413)}}
    }


def _event_schemas() -> tuple[Schema, dict[str, Schema]]:
    schema = UsageEvent.model_json_schema(ref_template="#/components/schemas/{model}")
    definitions = schema.pop("$defs", {})
    return schema, definitions


def document(server_url: str = "/") -> dict[str, Any]:
    """The whole OpenAPI 3.1 document."""
    event, definitions = _event_schemas()
    typed: dict[str, Schema] = {}

    def shape(of: Any) -> Schema:
        return _shape(of, typed)

    query_route, query_definitions = _query_route()
    alert_routes, alert_definitions = _alert_routes()
    credit_routes, credit_definitions = _credit_routes()
    event_ref = {"$ref": "#/components/schemas/UsageEvent"}
    batch = _object({"events": {"type": "array", "items": event_ref, "minItems": 1, "maxItems": MAX_BATCH_EVENTS}})
    html = {"description": "The dashboard (no key: it calls the API with the key it is given)",
            "content": {"text/html": {"schema": STRING}}}  # fmt: skip
    asset = {"200": {"description": "A script or style of the dashboard",
                     "content": {"text/javascript": {"schema": STRING}, "text/css": {"schema": STRING}}},
             "404": _json(ERROR, "No such asset")}  # fmt: skip
    paths: dict[str, Any] = {
        "/": {"get": {"summary": "The usage dashboard", "security": [], "responses": {"200": html}}},
        "/dashboard/{file}": {
            "get": {"summary": "A dashboard asset", "security": [], "parameters": [_path("file")], "responses": asset}
        },
        "/v1/usage/query": query_route,
        **_sending_routes(shape(shapes.IngestResult)),
        **alert_routes,
        **credit_routes,
        "/v1/events": {
            "post": {
                "summary": "Store one usage event or a batch, each exactly once (scope ingest)",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"anyOf": [event_ref, batch]}}},
                },
                "responses": {
                    "200": _json(
                        shape(shapes.IngestResult), "Every event stored now or before (accepted or duplicate)"
                    ),
                    "409": _json(shape(shapes.IngestResult), "At least one id is stored with a different body"),
                    **_errors(ERROR, 400, 403, 413),
                },
            }
        },
        "/api/v1/consumption/identifier/{identifier}/dates": _get(
            "AgentsGT: credits per day of one end user",
            [_path("identifier"), *RANGE],
            _json(shape(shapes.DailyCredits), "Days ascending, zero days omitted"),
            ERROR,
            404,
        ),
        "/api/v1/consumption/agent/{agentId}/dates": _get(
            "AgentsGT: credits per day of one agent",
            [_path("agentId"), *RANGE],
            _json(shape(shapes.DailyCredits), "Days ascending"),
            ERROR,
            404,
        ),
        "/api/v1/consumption/agent/{agentId}/models": _get(
            "AgentsGT: credits per model of one agent",
            [_path("agentId"), *RANGE],
            _json(
                shape(shapes.ModelsCredits),
                "Most credits first",
            ),
            ERROR,
            404,
        ),
        "/api/v1/consumption/organization/{orgId}/summary": _get(
            "AgentsGT: total credits of the organization (the tenant)",
            [_path("orgId"), *RANGE],
            _json(
                shape(shapes.OrganizationSummary),
                "Totals over the period",
            ),
            ERROR,
            404,
        ),
        "/api/v1/consumption/organization/{orgId}/agents": _get(
            "AgentsGT: credits per agent of the organization",
            [_path("orgId"), *RANGE],
            _json(
                shape(shapes.AgentsCredits),
                "Most credits first",
            ),
            ERROR,
            404,
        ),
        "/v2/gen-ai/agents/{uuid}/usage": _get(
            "DigitalOcean Gradient: token usage of one agent",
            [
                _path("uuid"),
                _query("start", "RFC 3339 start (default: all time)", INSTANT),
                _query("stop", "RFC 3339 end (default: now)", INSTANT),
            ],
            _json(shape(shapes.AgentUsage), "Measurements by usage type"),
            GRADIENT_ERROR,
            404,
        ),
        "/api/v1/usage/list": _get(
            "ChatBotKit: usage records, newest first, cursor-paged (Accept: text/csv for CSV)",
            [
                _query("take", f"Page size, 1 to {MAX_TAKE}", {"type": "integer", "minimum": 1, "maximum": MAX_TAKE}),
                _query("cursor", "The previous page's cursor, unchanged"),
                _query("order", "asc for oldest first", {"enum": ["asc", "desc"]}),
                _query("type", "Comma-separated event types"),
                *[_query(name, f"Comma-separated {name} values") for name in ID_FILTERS],
            ],
            {
                "description": "One page; cursor only when more records follow",
                "content": {
                    "application/json": {"schema": shape(shapes.ListPage)},
                    "text/csv": {"schema": STRING},
                },
            },
        ),
        "/api/v1/usage/series/fetch": _get(
            "ChatBotKit: daily totals of the last 90 days",
            [],
            _json(
                shape(shapes.Series),
                "Days with a non-zero total, midnight UTC in Unix ms",
            ),
        ),
        "/v1/me": _get(
            "Ours: the calling key's tenant and scopes",
            [],
            _json(
                shape(shapes.Me),
                "Who the key belongs to",
            ),
        ),
        "/api/v1/usage/fetch": _get(
            "ChatBotKit: totals of the current billing period",
            [],
            _json(
                shape(shapes.PeriodTotals),
                "Period totals",
            ),
        ),
        "/api/v1/bot/{botId}/usage/fetch": _get(
            "ChatBotKit: totals of one bot",
            [_path("botId"), *RANGE],
            _json(shape(shapes.Totals), "Totals (zero when unknown)"),
        ),
        "/api/v1/conversation/{conversationId}/usage/fetch": _get(
            "ChatBotKit: totals of one conversation",
            [_path("conversationId"), *RANGE],
            _json(shape(shapes.Totals), "Totals (zero when unknown)"),
        ),
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Agent usage meter",
            "version": "1",
            "description": "Usage events in; a native query API and the AgentsGT, DigitalOcean Gradient and "
            "ChatBotKit usage APIs out.",
        },
        "servers": [{"url": server_url}],
        "security": [{"bearerAuth": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "pk_…:sk_…"}},
            "schemas": {
                "UsageEvent": event,
                **definitions,
                **query_definitions,
                **alert_definitions,
                **credit_definitions,
                **typed,
            },
        },
    }


SWAGGER_UI = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Agent usage meter API</title>
<link rel="stylesheet" href="/docs/swagger-ui.css"></head>
<body><div id="ui"></div><script src="/docs/swagger-ui-bundle.js"></script>
<script>SwaggerUIBundle({url: "/openapi.json", dom_id: "#ui", persistAuthorization: true});</script>
</body></html>
"""


if __name__ == "__main__":
    print(json.dumps(document(), indent=2))
