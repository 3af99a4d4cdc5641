"""GET /api/v1/usage/series/fetch (ChatBotKit): daily tokens, conversations, messages of the last 90 days."""

from meter.api.chatbotkit import series
from meter.api.http import api_handler
from meter.core.logs import observed


@api_handler("read")
def handle(event, principal) -> dict:
    return series(principal.tenant)


lambda_handler = observed(handle)
