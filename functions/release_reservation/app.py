"""POST /v1/reservations/{reservationId}/release (ours, scope ingest): give back what is left."""

from meter.api.credits import release_reservation
from meter.api.http import api_handler, path_parameter
from meter.core.logs import observed


@api_handler("ingest")
def handle(event, principal) -> dict:
    return release_reservation(principal.tenant, path_parameter(event, "reservationId"))


lambda_handler = observed(handle)
