"""GET /api/v1/usage/series/fetch (ChatBotKit): daily tokens, conversations, messages of the last 90 days."""

from meter.chatbotkit import series
from meter.http import api_handler
from meter.logs import observed


@api_handler("read")
def handle(event, principal) -> dict:
    return series(principal.tenant)


lambda_handler = observed(handle)
