"""GET /v1/me (ours, any valid key): which tenant and scopes the calling key has."""

from meter.api.http import api_handler
from meter.api.shapes import Me
from meter.core.logs import observed


@api_handler("read")
def handle(event, principal) -> Me:
    return {"tenant": principal.tenant, "keyId": principal.key_id, "scopes": sorted(principal.scopes)}


lambda_handler = observed(handle)
