"""POST /v1/reservations (ours, scope ingest): hold credits on every subject at once, or 402."""

from meter.api.credits import create_reservation
from meter.api.http import api_handler, body_bytes, created_or_ok
from meter.core.json_body import decode_json
from meter.core.logs import observed


@api_handler("ingest", status=created_or_ok)
def handle(event, principal) -> dict:
    return create_reservation(principal.tenant, decode_json(body_bytes(event), "a reservation object"))


lambda_handler = observed(handle)
