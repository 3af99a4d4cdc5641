"""POST /v1/alerts (ours, scope admin): a threshold alert; fires at once for thresholds already reached."""

from meter.api.alerts import create_alert
from meter.api.http import api_handler, body_bytes
from meter.core.json_body import decode_json
from meter.core.logs import observed


@api_handler("admin", status=lambda _: 201)
def handle(event, principal) -> dict:
    return create_alert(principal.tenant, decode_json(body_bytes(event), "an alert object"))


lambda_handler = observed(handle)
