"""DELETE /v1/grants/{grantId} (ours, scope admin): void a grant from now on."""

from meter.api.credits import void_grant
from meter.api.http import api_handler, path_parameter
from meter.core.logs import observed


@api_handler("admin")
def handle(event, principal) -> dict:
    return void_grant(principal.tenant, path_parameter(event, "grantId"))


lambda_handler = observed(handle)
