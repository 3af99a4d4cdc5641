"""POST /v1/traces: OTLP/HTTP spans with GenAI usage become usage events (scope ingest)."""

from meter.api.http import RawResponse, api_handler, body_bytes, content_type
from meter.core.logs import metrics, observed
from meter.ingest.otlp import MAX_BODY_BYTES, ingest_traces, response_body


@api_handler("ingest")
def handle(event, principal) -> RawResponse:
    media_type = content_type(event)
    outcome = ingest_traces(principal.tenant, body_bytes(event, MAX_BODY_BYTES), media_type)
    metrics.add_metric(name="SpansCounted", unit="Count", value=outcome.counted)
    metrics.add_metric(name="SpansRejected", unit="Count", value=outcome.rejected)
    return RawResponse(response_body(outcome, media_type), media_type)


lambda_handler = observed(handle)
