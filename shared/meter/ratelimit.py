"""Per-key rate limits: a fixed one-second window per API key, counted in the Control table.

Each request adds one to its key's counter for the current second (one write, 1 WCU); over the
limit, the request is refused with 429 and ``Retry-After: 1``. Counters expire by TTL a minute
later. A key item may carry its own ``rateLimit``; otherwise ``RATE_LIMIT_PER_SECOND`` applies
(0 = unlimited). Counting happens before the use case, so refused requests cost no reads.
"""

from __future__ import annotations

from meter import dynamo
from meter.auth import Principal
from meter.config import get_settings
from meter.errors import TooManyRequests
from meter.timerange import now_ms


def enforce_rate_limit(principal: Principal) -> None:
    """Count this request against its key; TooManyRequests once the key is over its limit."""
    limit = principal.rate_limit if principal.rate_limit is not None else get_settings().rate_limit_per_second
    if limit <= 0:
        return
    second = now_ms() // 1000
    counted = dynamo.client().update_item(
        TableName=get_settings().control_table,
        Key={"pk": {"S": f"RATE#{principal.key_id}#{second}"}},
        UpdateExpression="ADD n :one SET expiresAt = if_not_exists(expiresAt, :expires)",
        ExpressionAttributeValues={":one": {"N": "1"}, ":expires": {"N": str(second + 60)}},
        ReturnValues="UPDATED_NEW",
    )
    if int(counted["Attributes"]["n"]["N"]) > limit:
        raise TooManyRequests(f"Rate limit exceeded: this API key may make {limit} requests per second", 1)
