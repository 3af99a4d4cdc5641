"""GET /api/v1/usage/fetch (ChatBotKit): the current billing period's snapshot."""

from meter.api.chatbotkit import current_snapshot
from meter.api.http import api_handler
from meter.core.logs import observed


@api_handler("read")
def handle(event, principal) -> dict:
    return current_snapshot(principal.tenant)


lambda_handler = observed(handle)
