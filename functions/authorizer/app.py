"""HTTP API Lambda REQUEST authorizer (simple responses): API key → tenant and scopes."""

from meter.auth import authorizer_context
from meter.logs import logger


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict, context: object) -> dict:
    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    return authorizer_context(headers.get("authorization"))
