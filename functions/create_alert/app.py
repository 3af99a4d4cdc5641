"""POST /v1/alerts (ours, scope admin): a threshold alert; fires at once for thresholds already reached."""

from meter.alerts.rules import create_alert
from meter.api.http import api_handler, body_bytes
from meter.core.logs import observed
from meter.ingest.batch import decode_json


@api_handler("admin", status=lambda _: 201)
def handle(event, principal) -> dict:
    return create_alert(principal.tenant, decode_json(body_bytes(event), "an alert object"))


lambda_handler = observed(handle)
