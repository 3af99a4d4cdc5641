"""GET /api/v1/conversation/{conversationId}/usage/fetch (ChatBotKit): totals of one conversation."""

from meter.api.chatbotkit import conversation_snapshot
from meter.api.http import api_handler, path_parameter, query_parameters
from meter.core.logs import observed


@api_handler("read")
def handle(event, principal) -> dict:
    return conversation_snapshot(principal.tenant, path_parameter(event, "conversationId"), query_parameters(event))


lambda_handler = observed(handle)
