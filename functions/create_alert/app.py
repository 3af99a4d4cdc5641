"""POST /v1/alerts (ours, scope admin): a threshold alert; fires at once for thresholds already reached."""

from meter.alerts import create_alert
from meter.http import api_handler, body_bytes
from meter.ingest import decode_json
from meter.logs import observed


@api_handler("admin", status=lambda _: 201)
def handle(event, principal) -> dict:
    return create_alert(principal.tenant, decode_json(body_bytes(event), "an alert object"))


lambda_handler = observed(handle)
