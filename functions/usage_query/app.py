"""GET /v1/usage/query (ours): usage in local windows of any time zone, grouped and filtered, JSON or CSV."""

from meter.api.http import RawResponse, api_handler, query_parameters
from meter.api.usage_query import answer, answer_csv, parse_query, repeated_parameters
from meter.core.logs import observed


@api_handler("read")
def handle(event, principal) -> dict | RawResponse:
    params = repeated_parameters(event.raw_query_string, query_parameters(event))
    query = parse_query(principal.tenant, params)
    if "text/csv" in (event.headers.get("accept") or ""):
        return RawResponse(answer_csv(query), "text/csv; charset=utf-8")
    return answer(query)


lambda_handler = observed(handle)
