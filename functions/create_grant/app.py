"""POST /v1/grants (ours, scope admin): credits for a subject; the same id again is the same grant."""

from meter.api.credits import create_grant
from meter.api.http import api_handler, body_bytes, created_or_ok
from meter.core.json_body import decode_json
from meter.core.logs import observed


@api_handler("admin", status=created_or_ok)
def handle(event, principal) -> dict:
    return create_grant(principal.tenant, decode_json(body_bytes(event), "a grant object"))


lambda_handler = observed(handle)
