"""POST /v1/events: store one event or a batch of up to 500 (scope ``ingest``)."""

from meter.api.http import api_handler, body_bytes
from meter.core.logs import metrics, observed
from meter.ingest.batch import ingest, parse_events


@api_handler("ingest", status=lambda body: 409 if body["conflicts"] else 200)
def handle(event, principal) -> dict:
    result = ingest(principal.tenant, parse_events(body_bytes(event)))
    metrics.add_metric(name="EventsAccepted", unit="Count", value=result.count("accepted"))
    return result.body()


lambda_handler = observed(handle)
