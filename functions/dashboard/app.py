"""GET / and GET /dashboard/{file}: the usage dashboard, its page and assets served by the stack itself.

No key is needed to load the page; everything it shows comes from the public APIs with the key
the user gives it.
"""

from pathlib import Path

from meter.api.http import static_file
from meter.core.logs import observed

STATIC = Path(__file__).parent / "static"


def handle(event, context) -> dict:
    name = (event.get("pathParameters") or {}).get("file") or "index.html"
    return static_file(STATIC, name)


lambda_handler = observed(handle)
