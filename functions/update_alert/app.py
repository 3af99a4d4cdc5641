"""PATCH /v1/alerts/{alertId} (ours, scope admin): rename, change thresholds or the webhook."""

from meter.alerts.rules import change_alert
from meter.api.http import api_handler, body_bytes, path_parameter
from meter.core.logs import observed
from meter.ingest.batch import decode_json


@api_handler("admin")
def handle(event, principal) -> dict:
    body = decode_json(body_bytes(event), "the fields to change")
    return change_alert(principal.tenant, path_parameter(event, "alertId"), body)


lambda_handler = observed(handle)
