"""GET /api/v1/usage/fetch (ChatBotKit): the current billing period's snapshot."""

from meter.chatbotkit import current_snapshot
from meter.http import api_handler
from meter.logs import observed


@api_handler("read")
def handle(event, principal) -> dict:
    return current_snapshot(principal.tenant)


lambda_handler = observed(handle)
