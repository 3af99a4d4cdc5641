"""POST /api/v1/events: OpenMeter-compatible CloudEvents ingest (scope ingest); 204, or 409 on conflicts."""

from meter.api.http import RawResponse, api_handler, body_bytes, content_type
from meter.core.logs import metrics, observed
from meter.ingest.cloudevents import ingest_cloudevents


@api_handler("ingest", status=lambda _: 409)
def handle(event, principal) -> dict | RawResponse:
    result = ingest_cloudevents(principal.tenant, body_bytes(event), content_type(event))
    metrics.add_metric(name="EventsAccepted", unit="Count", value=result.count("accepted"))
    return result.body() if result.count("conflict") else RawResponse("", "", status=204)


lambda_handler = observed(handle)
