"""DELETE /v1/alerts/{alertId} (ours, scope admin): remove an alert."""

from meter.api.alerts import delete_alert
from meter.api.http import api_handler, path_parameter
from meter.core.logs import observed


@api_handler("admin")
def handle(event, principal) -> dict:
    alert_id = path_parameter(event, "alertId")
    delete_alert(principal.tenant, alert_id)
    return {"id": alert_id, "deleted": True}


lambda_handler = observed(handle)
