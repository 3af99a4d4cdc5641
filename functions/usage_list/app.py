"""GET /api/v1/usage/list (ChatBotKit): usage records, cursor-paged JSON or CSV (Accept: text/csv)."""

from meter.api.chatbotkit import list_csv, list_records
from meter.api.http import RawResponse, api_handler, query_parameters
from meter.core.logs import observed


@api_handler("read")
def handle(event, principal) -> dict | RawResponse:
    params = query_parameters(event)
    if "text/csv" in (event.headers.get("accept") or ""):
        body, cursor = list_csv(principal.tenant, params)
        return RawResponse(body, "text/csv; charset=utf-8", {"X-Next-Cursor": cursor} if cursor else {})
    return list_records(principal.tenant, params)


lambda_handler = observed(handle)
