"""PATCH /v1/alerts/{alertId} (ours, scope admin): rename, change thresholds or the webhook."""

from meter.api.alerts import change_alert
from meter.api.http import api_handler, body_bytes, path_parameter
from meter.core.json_body import decode_json
from meter.core.logs import observed


@api_handler("admin")
def handle(event, principal) -> dict:
    body = decode_json(body_bytes(event), "the fields to change")
    return change_alert(principal.tenant, path_parameter(event, "alertId"), body)


lambda_handler = observed(handle)
