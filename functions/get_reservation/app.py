"""GET /v1/reservations/{reservationId} (ours, scope ingest): what a reservation holds and consumed."""

from meter.api.credits import get_reservation
from meter.api.http import api_handler, path_parameter
from meter.core.logs import observed


@api_handler("ingest")
def handle(event, principal) -> dict:
    return get_reservation(principal.tenant, path_parameter(event, "reservationId"))


lambda_handler = observed(handle)
