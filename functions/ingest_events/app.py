"""POST /v1/events: store one event or a batch of up to 500 (scope ``ingest``)."""

from meter.http import api_handler, body_bytes
from meter.ingest import IngestResult, ingest, parse_events
from meter.logs import logger, metrics, tracer


@api_handler("ingest", status=lambda body: 409 if body["conflicts"] else 200)
def ingest_events(event, principal) -> dict:
    result: IngestResult = ingest(principal.tenant, parse_events(body_bytes(event)))
    metrics.add_metric(name="EventsAccepted", unit="Count", value=result.count("accepted"))
    return result.body()


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict, context: object) -> dict:
    return ingest_events(event, context)
