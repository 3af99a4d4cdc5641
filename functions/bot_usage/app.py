"""GET /api/v1/bot/{botId}/usage/fetch (ChatBotKit): totals of one bot."""

from meter.api.chatbotkit import bot_snapshot
from meter.api.http import api_handler, path_parameter, query_parameters
from meter.core.logs import observed


@api_handler("read")
def handle(event, principal) -> dict:
    return bot_snapshot(principal.tenant, path_parameter(event, "botId"), query_parameters(event))


lambda_handler = observed(handle)
